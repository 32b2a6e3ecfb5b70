"""Synthetic CFHT MegaCam-like images with a truth catalogue (clearly labelled SYNTHETIC).

Each CCD is drawn from its own random stream (``seed``, ccd index), so a CCD looks the same whatever
``n_ccds`` is. Magnitudes in the truth table are instrumental (-2.5 log10 ADU, zero point 0), the same
convention as SExtractor's MAG_AUTO with its default MAG_ZEROPOINT 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table, vstack

FULL_SHAPE = (4612, 2048)  # (ny, nx), numpy order
PIXEL_SCALE = 0.187  # arcsec / px
GAP = 80  # px between CCDs on the focal plane
N_COLUMNS = 9  # MegaCam: 4 rows of 9 CCDs


@dataclass(frozen=True)
class SynthConfig:
    """Physical knobs of a synthetic exposure (ADU unless stated)."""

    sky: float = 1200.0
    sky_gradient: float = 0.05  # fractional change across a CCD
    gain: float = 1.62  # e-/ADU
    read_noise: float = 5.0  # e-
    fwhm: float = 3.7  # px
    beta: float = 2.5  # Moffat
    full_well: float = 65535.0
    saturate: float = 65000.0
    exptime: float = 300.0
    stars_per_ccd: int = 300  # at full CCD size; scaled with area
    galaxies_per_ccd: int = 900
    saturated_per_ccd: int = 3
    cosmics_per_ccd: int = 120
    bad_columns_per_ccd: int = 2
    star_mags: tuple[float, float] = (-15.0, -5.5)
    galaxy_mags: tuple[float, float] = (-13.0, -5.5)
    photzp: float = 30.0  # only written to the header, for realism


# The benches' exposure: about 45,000 detections on 36 full CCDs (cosmic rays, bleed trails and bad
# columns included), as a crowded MegaCam field gives.
BENCH_CONFIG = SynthConfig(stars_per_ccd=1200, galaxies_per_ccd=3600, cosmics_per_ccd=400)


def _moffat_alpha(cfg: SynthConfig) -> float:
    return cfg.fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / cfg.beta) - 1.0))


def _power_law_mags(rng: np.random.Generator, n: int, lo: float, hi: float, slope: float) -> np.ndarray:
    """Sample magnitudes with dN/dm proportional to 10**(slope * m) between lo and hi."""
    k = slope * math.log(10.0)
    u = rng.random(n)
    return np.log(np.exp(k * lo) + u * (np.exp(k * hi) - np.exp(k * lo))) / k


def _stamp_grid(half: int) -> tuple[np.ndarray, np.ndarray]:
    g = np.arange(-half, half + 1, dtype=np.float32)
    return g[None, :], g[:, None]  # x varies along columns, y along rows


def _render_stars(fx: np.ndarray, fy: np.ndarray, half: int, cfg: SynthConfig) -> np.ndarray:
    """Moffat stamps (N, S, S) normalised to unit sum, centred at sub-pixel offsets (fx, fy)."""
    gx, gy = _stamp_grid(half)
    alpha2 = _moffat_alpha(cfg) ** 2
    r2 = (gx[None] - fx[:, None, None]) ** 2 + (gy[None] - fy[:, None, None]) ** 2
    prof = (1.0 + r2 / np.float32(alpha2)) ** np.float32(-cfg.beta)
    prof /= prof.sum(axis=(1, 2), keepdims=True)
    return prof


def _render_galaxies(
    fx: np.ndarray,
    fy: np.ndarray,
    re: np.ndarray,
    q: np.ndarray,
    theta: np.ndarray,
    n_sersic: np.ndarray,
    half: int,
    cfg: SynthConfig,
) -> np.ndarray:
    """Elliptical Sersic (n=1 or 4) stamps convolved with the Moffat PSF by FFT, unit sum."""
    gx, gy = _stamp_grid(half)
    dx = gx[None] - fx[:, None, None]
    dy = gy[None] - fy[:, None, None]
    c, s = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
    u = dx * c + dy * s
    v = -dx * s + dy * c
    r = np.sqrt(u**2 + (v / q[:, None, None]) ** 2) / re[:, None, None]
    bn = np.where(n_sersic == 1, 1.678, 7.669).astype(np.float32)[:, None, None]
    inv_n = (1.0 / n_sersic).astype(np.float32)[:, None, None]
    prof = np.exp(-bn * (np.maximum(r, 1e-3) ** inv_n - 1.0)).astype(np.float32)
    psf = _render_stars(np.zeros(1, np.float32), np.zeros(1, np.float32), half, cfg)[0]
    kernel = np.fft.rfft2(np.fft.ifftshift(psf))
    prof = np.fft.irfft2(np.fft.rfft2(prof) * kernel, s=prof.shape[1:]).astype(np.float32)
    np.maximum(prof, 0.0, out=prof)
    prof /= prof.sum(axis=(1, 2), keepdims=True)
    return prof


def _add_stamps(
    image: np.ndarray, stamps: np.ndarray, ix: np.ndarray, iy: np.ndarray, flux: np.ndarray
) -> None:
    """Add flux-scaled stamps centred on integer pixels (ix, iy), clipped at the image edges."""
    ny, nx = image.shape
    half = stamps.shape[1] // 2
    for k in range(len(ix)):
        x0, y0 = ix[k] - half, iy[k] - half
        x1, y1 = x0 + 2 * half + 1, y0 + 2 * half + 1
        sx0, sy0 = max(0, -x0), max(0, -y0)
        sx1, sy1 = stamps.shape[2] - max(0, x1 - nx), stamps.shape[1] - max(0, y1 - ny)
        if sx0 >= sx1 or sy0 >= sy1:
            continue
        image[max(0, y0) : min(ny, y1), max(0, x0) : min(nx, x1)] += flux[k] * stamps[k, sy0:sy1, sx0:sx1]


def _half_size(peak_over_noise: np.ndarray, scale: float) -> np.ndarray:
    """Stamp half sizes, rounded up to 8/16/32/64, large enough for the wings to fade into the noise."""
    want = scale * np.maximum(peak_over_noise, 1.0) ** 0.2 + 4
    return np.select([want <= 8, want <= 16, want <= 32], [8, 16, 32], 64)


def _bleed(image: np.ndarray, ix: int, iy: int, half: int, full_well: float) -> None:
    """Move charge above full well along the column, as a saturated CCD does (bleed trail)."""
    ny, nx = image.shape
    for x in range(max(0, ix - half), min(nx, ix + half + 1)):
        col = image[:, x]
        lo, hi = max(0, iy - half), min(ny, iy + half + 1)
        over = np.nonzero(col[lo:hi] > full_well)[0]
        if over.size == 0:
            continue
        top, bot = lo + over[0], lo + over[-1]
        excess = float((col[top : bot + 1] - full_well).clip(min=0).sum())
        col[top : bot + 1] = full_well
        run = int(excess / full_well / 2) + 1
        col[max(0, top - run) : top] = full_well
        col[bot + 1 : min(ny, bot + 1 + run)] = full_well


def _ccd_wcs_header(index: int, shape: tuple[int, int], ra0: float, dec0: float) -> fits.Header:
    ny, nx = shape
    row, col = divmod(index, N_COLUMNS)
    x0, y0 = col * (nx + GAP), row * (ny + GAP)
    xc, yc = (N_COLUMNS * nx + (N_COLUMNS - 1) * GAP) / 2.0, (4 * ny + 3 * GAP) / 2.0
    scale = PIXEL_SCALE / 3600.0
    h = fits.Header()
    h["CTYPE1"], h["CTYPE2"] = "RA---TAN", "DEC--TAN"
    h["CRVAL1"], h["CRVAL2"] = ra0, dec0
    h["CRPIX1"], h["CRPIX2"] = xc - x0, yc - y0
    h["CD1_1"], h["CD1_2"], h["CD2_1"], h["CD2_2"] = -scale, 0.0, 0.0, scale
    h["DETSEC"] = (f"[{x0 + 1}:{x0 + nx},{y0 + 1}:{y0 + ny}]", "position on the focal plane")
    return h


def make_ccd(
    index: int, seed: int, shape: tuple[int, int] = FULL_SHAPE, cfg: SynthConfig = SynthConfig()
) -> tuple[np.ndarray, Table]:
    """Draw one CCD: uint16 image (ny, nx) and its truth table (x, y 1-based like SExtractor)."""
    rng = np.random.default_rng([seed, index])
    ny, nx = shape
    area = ny * nx / (FULL_SHAPE[0] * FULL_SHAPE[1])
    noise_adu = math.sqrt(cfg.sky / cfg.gain + (cfg.read_noise / cfg.gain) ** 2)
    alpha = _moffat_alpha(cfg)
    peak_frac = (cfg.beta - 1.0) / (math.pi * alpha**2)

    yy = np.linspace(-0.5, 0.5, ny, dtype=np.float32)[:, None]
    xx = np.linspace(-0.5, 0.5, nx, dtype=np.float32)[None, :]
    gx, gy = rng.uniform(-1, 1, 2) * cfg.sky_gradient
    image = np.float32(cfg.sky) * (1.0 + np.float32(gx) * xx + np.float32(gy) * yy)

    n_star = rng.poisson(cfg.stars_per_ccd * area)
    n_sat = max(1, round(cfg.saturated_per_ccd * area))
    n_gal = rng.poisson(cfg.galaxies_per_ccd * area)
    star_mag = np.concatenate(
        [rng.uniform(-17.0, -15.6, n_sat), _power_law_mags(rng, n_star, *cfg.star_mags, slope=0.2)]
    )
    gal_mag = _power_law_mags(rng, n_gal, *cfg.galaxy_mags, slope=0.35)
    n_star += n_sat
    x = rng.uniform(-0.5, nx - 0.5, n_star + n_gal)  # 0-based pixel-centre coordinates
    y = rng.uniform(-0.5, ny - 0.5, n_star + n_gal)
    ix, iy = np.rint(x).astype(int), np.rint(y).astype(int)
    fx, fy = (x - ix).astype(np.float32), (y - iy).astype(np.float32)
    mag = np.concatenate([star_mag, gal_mag])
    flux = 10.0 ** (-0.4 * mag)

    # Galaxy shapes: fainter galaxies are smaller; half-light radius in px.
    re = (10.0 ** rng.uniform(0.0, 0.6, n_gal) * np.clip(1.0 + 0.25 * (-gal_mag - 8.0), 0.6, 3.0)).astype(
        np.float32
    )
    q = rng.uniform(0.3, 1.0, n_gal).astype(np.float32)
    theta = rng.uniform(-math.pi / 2, math.pi / 2, n_gal).astype(np.float32)
    n_sersic = np.where(rng.random(n_gal) < 0.7, 1.0, 4.0)

    s_half = _half_size(flux[:n_star] * peak_frac / noise_adu, alpha)
    for h in np.unique(s_half):
        for chunk in np.array_split(np.nonzero(s_half == h)[0], max(1, int((s_half == h).sum()) // 2000 + 1)):
            stamps = _render_stars(fx[chunk], fy[chunk], int(h), cfg)
            _add_stamps(image, stamps, ix[chunk], iy[chunk], flux[chunk])
    g_half = np.maximum(_half_size(flux[n_star:] * peak_frac / noise_adu, alpha), np.ceil(4 * re + 8))
    g_half = np.select([g_half <= 16, g_half <= 32], [16, 32], 64)
    for h in np.unique(g_half):
        sel = np.nonzero(g_half == h)[0]
        for chunk in np.array_split(sel, max(1, len(sel) // 1000 + 1)):
            stamps = _render_galaxies(
                fx[n_star + chunk],
                fy[n_star + chunk],
                re[chunk],
                q[chunk],
                theta[chunk],
                n_sersic[chunk],
                int(h),
                cfg,
            )
            _add_stamps(image, stamps, ix[n_star + chunk], iy[n_star + chunk], flux[n_star + chunk])

    saturated = np.zeros(n_star + n_gal, bool)
    for k in np.nonzero(flux[:n_star] * peak_frac + cfg.sky > cfg.full_well)[0]:
        saturated[k] = True
        _bleed(image, int(ix[k]), int(iy[k]), int(s_half[k]), cfg.full_well)
    sat_mask = image >= cfg.full_well

    # Poisson (Gaussian approximation: counts are >> 100 e- everywhere) plus read noise, in ADU.
    var = image / np.float32(cfg.gain) + np.float32((cfg.read_noise / cfg.gain) ** 2)
    image += np.sqrt(var, out=var) * rng.standard_normal(shape, dtype=np.float32)
    del var
    image[sat_mask] = cfg.full_well

    for _ in range(max(0, rng.poisson(cfg.bad_columns_per_ccd * area))):
        cx, y_start = int(rng.integers(0, nx)), int(rng.integers(0, ny // 2))
        image[y_start:, cx] = cfg.sky * (0.05 if rng.random() < 0.5 else 3.0)
    n_cr = rng.poisson(cfg.cosmics_per_ccd * area)
    for _ in range(n_cr):
        cx, cy = int(rng.integers(0, nx)), int(rng.integers(0, ny))
        length, ang = int(rng.integers(1, 6)), rng.uniform(0, math.pi)
        amp = rng.uniform(300, 8000)
        for t in range(length):
            px, py = int(cx + t * math.cos(ang)), int(cy + t * math.sin(ang))
            if 0 <= px < nx and 0 <= py < ny:
                image[py, px] += amp

    data = np.clip(np.rint(image), 0, 65535).astype(np.uint16)
    kind = np.array(["star"] * n_star + ["galaxy"] * n_gal)
    truth = Table(
        {
            "ccd": np.full(n_star + n_gal, index, np.int16),
            "X_IMAGE": x + 1.0,
            "Y_IMAGE": y + 1.0,
            "FLUX": flux,
            "MAG": mag,
            "KIND": kind,
            "SATURATED": saturated,
            "RE": np.concatenate([np.full(n_star, np.nan), re]),
        }
    )
    return data, truth


def make_megacam_image(
    path: str | Path,
    seed: int = 0,
    n_ccds: int = 36,
    shape: tuple[int, int] = FULL_SHAPE,
    obs_id: str = "synthetic",
    config: SynthConfig = SynthConfig(),
    ra: float = 150.0,
    dec: float = 2.2,
) -> Table:
    """Write a Rice tile-compressed MEF like a CFHT MegaCam exposure and return its truth table.

    ``shape`` is (ny, nx) per CCD (MegaCam: 4612 x 2048). Extensions are named ccd00..ccdNN.
    """
    if not 1 <= n_ccds <= 36:
        raise ValueError("n_ccds must be between 1 and 36")
    path = Path(path)
    cfg = config
    primary = fits.PrimaryHDU()
    h = primary.header
    h["SYNTHETC"] = (True, "SYNTHETIC image, not a real observation")
    h["TELESCOP"] = ("CFHT 3.6m", "synthetic")
    h["INSTRUME"] = ("MegaPrime", "synthetic MegaCam-like")
    h["DETECTOR"] = "MegaCam"
    h["FILTER"] = ("r.MP9601", "synthetic")
    h["EXPTIME"] = (cfg.exptime, "s")
    h["OBJECT"] = (f"SYNTHETIC {obs_id}"[:68], "synthetic field")
    h["OBSID"] = obs_id[:68]
    h["OBSTYPE"] = "OBJECT"
    h["DATE-OBS"] = "2015-03-18T10:00:00.0"
    h["MJD-OBS"] = 57099.41666667
    h["RA_DEG"], h["DEC_DEG"] = ra, dec
    h["GAIN"], h["RDNOISE"] = (cfg.gain, "e-/ADU"), (cfg.read_noise, "e-")
    h["SATURATE"] = (cfg.saturate, "ADU")
    h["PHOTZP"] = (cfg.photzp, "synthetic zero point, mag")
    h["NEXTEND"] = n_ccds
    h["SEED"] = (seed, "generator seed")
    h["COMMENT"] = "SYNTHETIC image made by orchestration.catalogue.synth for demos and tests."
    h["COMMENT"] = "Sky gradient, Moffat stars, Sersic galaxies, bleed trails, bad columns, cosmic rays."
    primary.writeto(path, overwrite=True)

    truths = []
    for i in range(n_ccds):
        data, truth = make_ccd(i, seed, shape, cfg)
        hdr = _ccd_wcs_header(i, shape, ra, dec)
        hdr["CCDNAME"] = f"ccd{i:02d}"
        hdr["SYNTHETC"] = (True, "SYNTHETIC image")
        hdr["OBJECT"] = h["OBJECT"]
        hdr["EXPTIME"] = cfg.exptime
        hdr["GAIN"], hdr["RDNOISE"], hdr["SATURATE"] = cfg.gain, cfg.read_noise, cfg.saturate
        hdu = fits.CompImageHDU(data=data, header=hdr, compression_type="RICE_1")
        hdu.header["EXTNAME"] = f"ccd{i:02d}"
        with fits.open(path, mode="append") as hdul:
            hdul.append(hdu)
        truths.append(truth)
    table = vstack(truths) if truths else Table()
    table.meta["SEED"] = seed
    table.meta["SYNTHETIC"] = True
    return table
