/* Rice-compressed FITS image tiles (RICE_1, as fpack writes them) straight into a float32 array.

   The same decoding as CFITSIO's fits_rdecomp*, with a 64-bit bit buffer, bounds checked against each
   tile's compressed length, and BSCALE/BZERO applied on the way out, so one call decodes a whole CCD
   without a pass per tile in Python, an intermediate integer image or a separate conversion pass.
   Built by the Makefile into _rice.so and loaded with ctypes (orchestration/catalogue/fitsread.py);
   without it the reader uses astropy's decoder. */

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const uint8_t *c;   /* next byte to load */
    const uint8_t *end; /* end of this tile's compressed bytes */
    uint64_t buf;       /* unread bits, left aligned */
    int nbits;          /* how many bits of buf are valid */
} bits_t;

static inline void refill(bits_t *b) {
    if (b->end - b->c >= 8) { /* whole bytes into the free low part of buf, 8 bytes at a time */
        if (b->nbits <= 56) {
            const uint8_t *p = b->c;
            uint64_t w = ((uint64_t)p[0] << 56) | ((uint64_t)p[1] << 48) | ((uint64_t)p[2] << 40) |
                         ((uint64_t)p[3] << 32) | ((uint64_t)p[4] << 24) | ((uint64_t)p[5] << 16) |
                         ((uint64_t)p[6] << 8) | (uint64_t)p[7];
            int take = (64 - b->nbits) >> 3;
            /* Bits of w past the whole bytes taken are the next byte's: loaded again, same place. */
            b->buf |= w >> b->nbits;
            b->c += take;
            b->nbits += 8 * take;
        }
        return;
    }
    while (b->nbits <= 56 && b->c < b->end) {
        b->buf |= (uint64_t)(*b->c++) << (56 - b->nbits);
        b->nbits += 8;
    }
}

/* n (1..32) bits; -1 when the tile has fewer left. */
static inline int64_t take_bits(bits_t *b, int n) {
    if (b->nbits < n) {
        refill(b);
        if (b->nbits < n) return -1;
    }
    uint64_t v = b->buf >> (64 - n);
    b->buf <<= n;
    b->nbits -= n;
    return (int64_t)v;
}

/* One tile of npix values into out[0..npix). 0 on success, 1 when the bytes run out or are invalid. */
static inline __attribute__((always_inline)) int decode_tile(const uint8_t *c, int64_t clen, int bytepix,
                                                             int nblock, int64_t npix, double bscale,
                                                             double bzero, float *out) {
    const int fsbits = bytepix == 1 ? 3 : bytepix == 2 ? 4 : 5;
    const int fsmax = bytepix == 1 ? 6 : bytepix == 2 ? 14 : 25;
    const int bbits = 8 * bytepix;
    const uint32_t mask = bytepix == 4 ? 0xffffffffu : ((1u << bbits) - 1u);
    const float scale = (float)bscale, zero = (float)bzero;
    const int scaled = bscale != 1.0;
    if (clen < bytepix) return 1;
    uint32_t lastpix = 0;
    for (int k = 0; k < bytepix; k++) lastpix = (lastpix << 8) | c[k];
    bits_t b = {c + bytepix, c + clen, 0, 0};

#define EMIT(i, u)                                                                                   \
    do {                                                                                             \
        uint32_t u_ = (u) & mask;                                                                    \
        float v_ = bytepix == 1   ? (float)u_                                                        \
                   : bytepix == 2 ? (float)(int16_t)(uint16_t)u_                                     \
                                  : (float)(int32_t)u_;                                              \
        out[i] = scaled ? v_ * scale + zero : v_ + zero;                                             \
    } while (0)

    for (int64_t i = 0; i < npix;) {
        int64_t fs = take_bits(&b, fsbits);
        if (fs < 0) return 1;
        fs -= 1;
        int64_t imax = i + nblock < npix ? i + nblock : npix;
        if (fs < 0) { /* low entropy: all differences zero */
            for (; i < imax; i++) EMIT(i, lastpix);
        } else if (fs == fsmax) { /* high entropy: values stored as they are */
            for (; i < imax; i++) {
                int64_t diff = take_bits(&b, bbits);
                if (diff < 0) return 1;
                uint32_t d = (uint32_t)diff;
                d = (d & 1) ? ~(d >> 1) : (d >> 1);
                lastpix = (d + lastpix) & mask;
                EMIT(i, lastpix);
            }
        } else if (fs > fsmax) {
            return 1;
        } else { /* Rice codes: a unary count of leading zeros, a one, then fs low bits */
            const int ifs = (int)fs;
            for (; i < imax; i++) {
                uint32_t nzero = 0, low = 0;
                int z;
                if (b.nbits < 32) refill(&b);
                if (b.buf != 0 && (z = __builtin_clzll(b.buf)) + 1 + ifs <= b.nbits) {
                    /* the usual case: the whole code is in the buffer */
                    nzero = (uint32_t)z;
                    b.buf <<= z;
                    b.buf <<= 1;
                    low = (uint32_t)((b.buf >> (63 - ifs)) >> 1); /* the top fs bits (none if fs 0) */
                    b.buf <<= ifs;
                    b.nbits -= z + 1 + ifs;
                } else {
                    for (;;) {
                        refill(&b);
                        if (b.buf != 0 && (z = __builtin_clzll(b.buf)) < b.nbits) break;
                        if (b.nbits == 0) return 1; /* the tile ends inside a code */
                        nzero += (uint32_t)b.nbits; /* all valid bits zero: the run goes on */
                        b.buf = 0;
                        b.nbits = 0;
                        if (nzero > 64u * 1024u) return 1;
                    }
                    nzero += (uint32_t)z;
                    b.buf <<= z;
                    b.buf <<= 1;
                    b.nbits -= z + 1;
                    if (ifs > 0) {
                        int64_t v = take_bits(&b, ifs);
                        if (v < 0) return 1;
                        low = (uint32_t)v;
                    }
                }
                uint32_t d = (nzero << ifs) | low;
                d = (d & 1) ? ~(d >> 1) : (d >> 1);
                lastpix = (d + lastpix) & mask;
                EMIT(i, lastpix);
            }
        }
    }
#undef EMIT
    return 0;
}

/* Decode tiles first, first + step, ... (ntiles of them) of a tile-compressed image.

   heap: the binary table's heap; desc: (compressed length, heap offset) per table row, 2 x nrows values;
   tile_pix: pixels per full tile; total_pix: pixels of the whole image (the last tile may be short);
   out: room for the decoded tiles one after the other.
   Returns 0, or 1 + the table row whose tile is out of the heap or does not decode. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("arch=x86-64-v3", "default"))) /* lzcnt where the CPU has it */
#endif
int64_t rice_tiles_to_float(const uint8_t *heap, int64_t heap_len, const int64_t *desc, int64_t nrows,
                            int64_t first, int64_t step, int64_t ntiles, int64_t tile_pix, int64_t total_pix,
                            int bytepix, int nblock, double bscale, double bzero, float *out) {
    if (!(bytepix == 1 || bytepix == 2 || bytepix == 4) || nblock <= 0 || step <= 0 || tile_pix <= 0)
        return -1;
    float *dst = out;
    for (int64_t t = 0; t < ntiles; t++) {
        int64_t row = first + t * step;
        if (row < 0 || row >= nrows) return -1;
        int64_t len = desc[2 * row], off = desc[2 * row + 1];
        int64_t start = row * tile_pix;
        int64_t npix = total_pix - start < tile_pix ? total_pix - start : tile_pix;
        if (len < 0 || off < 0 || off > heap_len || len > heap_len - off || npix <= 0) return 1 + row;
        const uint8_t *c = heap + off;
        int bad = bytepix == 2   ? decode_tile(c, len, 2, nblock, npix, bscale, bzero, dst)
                  : bytepix == 1 ? decode_tile(c, len, 1, nblock, npix, bscale, bzero, dst)
                                 : decode_tile(c, len, 4, nblock, npix, bscale, bzero, dst);
        if (bad) return 1 + row;
        dst += npix;
    }
    return 0;
}
