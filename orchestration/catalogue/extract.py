"""SExtractor-like source extraction with sep, one CCD at a time.

``extract_ccd`` works on one image array, so a Celery task per CCD can call it and the results merge
with ``merge_ccds``. ``extract_file`` does the whole file with a process pool (command line, bench).
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import dataclasses
import gc
import logging
import multiprocessing
import os
import re
import resource
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import astropy
import numpy as np
import sep
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning

from orchestration.catalogue import textcols
from orchestration.catalogue.fitsread import read_ccd
from orchestration.catalogue.sexdefaults import BUILT_IN, BUILT_IN_KERNEL, tutorial_defaults
from orchestration.catalogue.validate import (
    DEFAULT_MAX_CCD_PIXELS,
    DEFAULT_MAX_DECOMPRESSED_BYTES,
    CatalogueInputError,
    CcdInfo,
    validate_image,
)

log = logging.getLogger(__name__)

# (name, numpy dtype, unit, description) in output order; names as SExtractor writes them.
COLUMNS: list[tuple[str, str, str, str]] = [
    ("NUMBER", "i4", "", "Running object number"),
    ("ccd", "i2", "", "CCD number (from EXTNAME ccdNN, else the HDU order)"),
    ("EXT_NUMBER", "i2", "", "FITS extension number"),
    ("X_IMAGE", "f8", "pixel", "Object position along x"),
    ("Y_IMAGE", "f8", "pixel", "Object position along y"),
    ("ALPHA_J2000", "f8", "deg", "Right ascension of barycenter (J2000)"),
    ("DELTA_J2000", "f8", "deg", "Declination of barycenter (J2000)"),
    ("FLUX_AUTO", "f4", "count", "Flux within a Kron-like elliptical aperture"),
    ("FLUXERR_AUTO", "f4", "count", "RMS error for AUTO flux"),
    ("MAG_AUTO", "f4", "mag", "Kron-like elliptical aperture magnitude"),
    ("MAGERR_AUTO", "f4", "mag", "RMS error for AUTO magnitude"),
    ("KRON_RADIUS", "f4", "", "Kron apertures in units of A or B"),
    ("FLUX_MAX", "f4", "count", "Peak flux above background"),
    ("ISOAREA_IMAGE", "i4", "pixel**2", "Isophotal area above Analysis threshold"),
    ("A_IMAGE", "f4", "pixel", "Profile RMS along major axis"),
    ("B_IMAGE", "f4", "pixel", "Profile RMS along minor axis"),
    ("THETA_IMAGE", "f4", "deg", "Position angle (CCW/x)"),
    ("FWHM_IMAGE", "f4", "pixel", "FWHM assuming a gaussian core"),
    ("FLAGS", "i2", "", "Extraction flags"),
]
CATALOGUE_DTYPE = np.dtype([(n, t) for n, t, _, _ in COLUMNS])
UNITS = {n: u for n, _, u, _ in COLUMNS}
DESCRIPTIONS = {n: d for n, _, _, d in COLUMNS}
DEFAULT_KERNEL = BUILT_IN_KERNEL  # Debian's default.conv; the installed file's is used where present


@dataclass
class ExtractionParams:
    """Extraction parameters with SExtractor's names; the defaults are Debian's ``default.sex``, as the
    tutorial's job uses it (``defaults()`` reads the installed file; these are its values)."""

    DETECT_THRESH: float = 1.5
    DETECT_MINAREA: int = 3
    DEBLEND_NTHRESH: int = 32
    DEBLEND_MINCONT: float = 0.005
    CLEAN: bool = True
    CLEAN_PARAM: float = 1.0
    FILTER: bool = True
    MAG_ZEROPOINT: float = 0.0
    BACK_SIZE: int = 64
    BACK_FILTERSIZE: int = 3
    PHOT_AUTOPARAMS: tuple[float, float] = (2.5, 3.5)
    SATUR_LEVEL: float = 50000.0
    SATUR_KEY: str = "SATURATE"
    GAIN: float = 0.0  # 0 = no Poisson term in the errors, as SExtractor

    def __post_init__(self) -> None:
        checks = [
            (self.DETECT_THRESH > 0, "DETECT_THRESH must be positive"),
            (1 <= self.DETECT_MINAREA <= 10000, "DETECT_MINAREA must be between 1 and 10000"),
            (1 <= self.DEBLEND_NTHRESH <= 64, "DEBLEND_NTHRESH must be between 1 and 64"),
            (0.0 <= self.DEBLEND_MINCONT <= 1.0, "DEBLEND_MINCONT must be between 0 and 1"),
            (self.CLEAN_PARAM > 0, "CLEAN_PARAM must be positive"),
            (8 <= self.BACK_SIZE <= 1024, "BACK_SIZE must be between 8 and 1024"),
            (1 <= self.BACK_FILTERSIZE <= 11, "BACK_FILTERSIZE must be between 1 and 11"),
            (len(self.PHOT_AUTOPARAMS) == 2 and min(self.PHOT_AUTOPARAMS) > 0, "PHOT_AUTOPARAMS needs 2 > 0"),
            (self.GAIN >= 0, "GAIN must be zero or positive"),
            (-100 < self.MAG_ZEROPOINT < 100, "MAG_ZEROPOINT must be between -100 and 100"),
        ]
        problems = [message for ok, message in checks if not ok]
        if problems:  # all of them at once, so a form shows every one
            plural = "s" if len(problems) > 1 else ""
            raise CatalogueInputError(f"Invalid parameter{plural}: {'; '.join(problems)}", problems)
        self.PHOT_AUTOPARAMS = (float(self.PHOT_AUTOPARAMS[0]), float(self.PHOT_AUTOPARAMS[1]))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def defaults(cls) -> ExtractionParams:
        """The tutorial's: the installed default.sex's values (the built-in ones if it is missing or
        its values are not valid here)."""
        try:
            return cls(**tutorial_defaults().values)
        except (CatalogueInputError, TypeError):
            return cls(**BUILT_IN)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ExtractionParams:
        """Build from a form/JSON dict, missing names at their defaults; unknown names are an error
        the user sees."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise CatalogueInputError(f"Unknown parameter(s): {', '.join(unknown)}")
        try:
            return cls(**{**cls.defaults().to_dict(), **values})
        except TypeError as exc:
            raise CatalogueInputError(f"Invalid parameter value: {exc}") from exc


@dataclass
class Catalogue:
    """Sources of one image (all CCDs) with what is needed to reproduce them."""

    rows: np.ndarray  # CATALOGUE_DTYPE, or whatever columns a read SExtractor file had
    provenance: dict[str, Any] = field(default_factory=dict)
    # per CCD: (ccd number, EXTNAME, (ny, nx), number of sources)
    ccds: list[tuple[int, str, tuple[int, int], int]] = field(default_factory=list)
    # the text formats' rows, made per CCD by the workers, in the order of ``rows``; for a format
    # missing here the writer formats ``rows`` itself
    text: dict[str, bytes] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rows)


def library_versions() -> dict[str, str]:
    return {"sep": sep.__version__, "astropy": astropy.__version__, "numpy": np.__version__}


def defaults_provenance(params: ExtractionParams) -> dict[str, Any]:
    """Where the defaults came from and which parameters differ from them (shown with a catalogue)."""
    found = tutorial_defaults()
    base = ExtractionParams.defaults().to_dict()
    changed = {k: v for k, v in params.to_dict().items() if base.get(k) != v}
    return {"from": found.source, "filter": found.kernel_source, "changed": changed}


def ccd_number(name: str, fallback: int) -> int:
    """ccdNN -> NN (MegaCam names); anything else keeps its order in the file."""
    match = re.fullmatch(r"(?i)ccd0*(\d+)", name.strip())
    return int(match.group(1)) if match else fallback


def _celestial_wcs(header: fits.Header) -> WCS | None:
    if not str(header.get("CTYPE1", "")).startswith(("RA", "GLON", "ELON")):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(header, naxis=2)
    except (ValueError, KeyError, MemoryError):
        return None
    return wcs if wcs.has_celestial else None


def _sexflags(
    objs: np.ndarray, aper_flags: np.ndarray, shape: tuple[int, int], saturated: np.ndarray
) -> np.ndarray:
    """Translate sep's flags into SExtractor's FLAGS bits (1 neighbours, 2 blended, 4 saturated,
    8 truncated at the image edge, 64 deblending overflow)."""
    ny, nx = shape
    flags = np.zeros(len(objs), np.int16)
    flags |= np.where(aper_flags & sep.APER_HASMASKED, 1, 0).astype(np.int16)
    flags |= np.where(objs["flag"] & sep.OBJ_MERGED, 2, 0).astype(np.int16)
    flags |= np.where(saturated, 4, 0).astype(np.int16)
    edge = (objs["xmin"] <= 0) | (objs["ymin"] <= 0) | (objs["xmax"] >= nx - 1) | (objs["ymax"] >= ny - 1)
    flags |= np.where(edge | (aper_flags & sep.APER_TRUNC != 0), 8, 0).astype(np.int16)
    flags |= np.where(objs["flag"] & sep.OBJ_DOVERFLOW, 64, 0).astype(np.int16)
    return flags


def _noise_varies(data: np.ndarray, tolerance: float = 0.02) -> bool:
    """Does the background noise differ by more than ``tolerance`` between parts of the CCD?

    Robust (MAD) noise of a pixel subsample in 8 x 2 blocks (the two amplifiers of a MegaCam CCD);
    when it is flat, a scalar RMS gives SExtractor's local-RMS threshold without building the map.
    """
    ny, nx = data.shape
    sub = data[::8, ::4]
    if sub.shape[0] < 16 or sub.shape[1] < 4:
        return True
    sigmas = []
    for band in np.array_split(sub, 8, axis=0):
        for block in np.array_split(band, 2, axis=1):
            # Differences remove the smooth background, so their median is zero: MAD = median(|diff|).
            diff = np.abs(np.diff(block, axis=1).ravel())
            sigmas.append(float(np.partition(diff, diff.size // 2)[diff.size // 2]))
    lo, hi = min(sigmas), max(sigmas)
    return lo <= 0 or hi / lo > 1.0 + tolerance * 2


def _upsample(small: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return np.repeat(np.repeat(small, 2, axis=0), 2, axis=1)[: shape[0], : shape[1]]


def _subtract_background(
    data: np.ndarray, mask: np.ndarray | None, params: ExtractionParams
) -> float | np.ndarray:
    """SExtractor's background (meshes of BACK_SIZE, median-filtered, spline), subtracted in place;
    returns the noise for the threshold (a scalar RMS when the noise is flat, else the RMS map).

    On a large unmasked image the meshes are measured on every other pixel in each direction: a
    quarter of the pixels with the same noise, which halves the cost of the step; each mesh's mode
    moves by ~1 % of the noise, and the detections by ~0.1 %. The map is smooth on the mesh scale,
    so each of its values serves the 2 x 2 pixels around it."""
    ny, nx = data.shape
    half = mask is None and params.BACK_SIZE % 2 == 0 and params.BACK_SIZE >= 16 and min(ny, nx) >= 512
    if half:
        sample = np.ascontiguousarray(data[::2, ::2])
        size = params.BACK_SIZE // 2
    else:
        sample, size = data, params.BACK_SIZE
    bkg = sep.Background(
        sample, mask=mask, bw=size, bh=size, fw=params.BACK_FILTERSIZE, fh=params.BACK_FILTERSIZE
    )
    if not half:
        bkg.subfrom(data)
    elif ny % 2 == 0 and nx % 2 == 0:  # each map row serves two image rows
        data.reshape(ny // 2, 2, nx)[...] -= np.repeat(bkg.back(), 2, axis=1)[:, None, :]
    else:
        data -= _upsample(bkg.back(), (ny, nx))
    if mask is None and not _noise_varies(data):
        return float(bkg.globalrms)  # same threshold as the map within 2%, and much cheaper
    rms_map = bkg.rms() if not half else _upsample(bkg.rms(), (ny, nx))
    if mask is not None:
        rms_map[mask] = np.inf
    return rms_map


PIXSTACKS = (300_000, 4_000_000)  # SExtractor's MEMORY_PIXSTACK; then room for a CCD-long bleed trail


def _detect(
    data: np.ndarray, err: float | np.ndarray, mask: np.ndarray | None, params: ExtractionParams
) -> tuple[np.ndarray, np.ndarray]:
    """sep.extract with SExtractor's pixel stack, and a larger one only for a CCD that fills it: sep
    touches every pixel of its stack (~25 bytes each), so a large one costs ~70 MB of each worker's
    memory for every CCD."""
    stacks = (*PIXSTACKS[:-1], max(PIXSTACKS[-1], data.size // 4))
    for stack in stacks:
        sep.set_extract_pixstack(stack)
        try:
            return sep.extract(  # type: ignore[no-any-return]
                data,
                params.DETECT_THRESH,
                err=err,
                mask=mask,
                minarea=params.DETECT_MINAREA,
                filter_kernel=tutorial_defaults().kernel if params.FILTER else None,
                filter_type="conv",
                deblend_nthresh=params.DEBLEND_NTHRESH,
                deblend_cont=params.DEBLEND_MINCONT,
                clean=params.CLEAN,
                clean_param=params.CLEAN_PARAM,
                segmentation_map=True,
            )
        except Exception as exc:  # sep raises plain Exception for its C errors (e.g. pixel buffer full)
            if "pixel buffer" in str(exc) and stack != stacks[-1]:
                log.info("pixel stack of %d full on this CCD; again with a larger one", stack)
                continue
            raise CatalogueInputError(f"Source detection failed on this CCD: {exc}") from exc
    raise CatalogueInputError("Source detection failed on this CCD: its objects fill the pixel stack")


def extract_ccd(
    data: np.ndarray,
    header: fits.Header | None = None,
    params: ExtractionParams | None = None,
    ccd: int = 0,
    ext_number: int = 0,
) -> np.ndarray:
    """Detect and measure sources on one CCD; returns a CATALOGUE_DTYPE array.

    ``data`` is modified in place (background subtracted) to save memory; pass a copy to keep it.
    """
    params = params or ExtractionParams.defaults()
    header = header if header is not None else fits.Header()
    if data.ndim != 2 or min(data.shape) < 2:
        raise CatalogueInputError("The image has no usable 2-d data")
    data = np.ascontiguousarray(data, dtype=np.float32)
    mask = None
    if int(header.get("BITPIX", -32)) < 0:  # integer images cannot hold NaN; skip the scan for them
        bad = ~np.isfinite(data)
        if bad.any():
            mask = bad
            data[bad] = 0.0
    satur = (
        float(header.get(params.SATUR_KEY, params.SATUR_LEVEL)) if params.SATUR_KEY else params.SATUR_LEVEL
    )
    sat_pixels = np.flatnonzero(data >= satur)  # indices: a few thousand, not a CCD-sized mask

    sep.set_sub_object_limit(4096)
    err = _subtract_background(data, mask, params)
    objs, segmap = _detect(data, err, mask, params)
    out = np.zeros(len(objs), CATALOGUE_DTYPE)
    if len(objs) == 0:
        return out
    x, y = objs["x"], objs["y"]
    a = np.maximum(objs["a"], 0.01)
    b = np.clip(objs["b"], 0.01, a)
    theta = np.clip(objs["theta"], -np.pi / 2, np.pi / 2)
    seg_id = np.arange(1, len(objs) + 1, dtype=np.int32)
    kron, kflag = sep.kron_radius(data, x, y, a, b, theta, 6.0, seg_id=seg_id, segmap=segmap)
    kron = np.where(np.isfinite(kron) & (kron > 0), kron, 0.0)
    k_factor, r_min = params.PHOT_AUTOPARAMS
    r = np.maximum(k_factor * kron, r_min)
    gain = params.GAIN if params.GAIN > 0 else None
    flux, fluxerr, aflag = sep.sum_ellipse(
        data, x, y, a, b, theta, r, err=err, gain=gain, subpix=1, seg_id=seg_id, segmap=segmap
    )
    # Half-light radius inside the AUTO aperture (capped: bleed trails and bad columns have huge A).
    r_aper = np.clip(r * a, 1.0, 25.0)
    # whole pixels (subpix 1): FWHM to ~0.1 px at half the cost of 5 x 5 sub-pixels
    rhalf, _ = sep.flux_radius(
        data,
        x,
        y,
        r_aper,
        0.5,
        normflux=np.where(flux > 0, flux, 1.0),
        subpix=1,
        seg_id=seg_id,
        segmap=segmap,
    )
    saturated = np.zeros(len(objs), bool)
    if sat_pixels.size:
        hit = np.unique(segmap.ravel()[sat_pixels])
        saturated[hit[hit > 0] - 1] = True

    positive = flux > 0
    out["ccd"] = ccd
    out["EXT_NUMBER"] = ext_number
    out["NUMBER"] = seg_id
    out["X_IMAGE"], out["Y_IMAGE"] = x + 1.0, y + 1.0
    out["FLUX_AUTO"], out["FLUXERR_AUTO"] = flux, fluxerr
    safe = np.where(positive, flux, 1.0)
    out["MAG_AUTO"] = np.where(positive, -2.5 * np.log10(safe) + params.MAG_ZEROPOINT, 99.0)
    out["MAGERR_AUTO"] = np.where(positive, 1.0857 * fluxerr / safe, 99.0)
    out["KRON_RADIUS"] = kron
    out["FLUX_MAX"] = objs["peak"]
    out["ISOAREA_IMAGE"] = objs["npix"]
    out["A_IMAGE"], out["B_IMAGE"] = objs["a"], objs["b"]
    out["THETA_IMAGE"] = np.degrees(objs["theta"])
    out["FWHM_IMAGE"] = np.where(np.isfinite(rhalf), 2.0 * rhalf, 0.0)  # exact for a Gaussian
    out["FLAGS"] = _sexflags(objs, aflag | kflag, data.shape, saturated)
    wcs = _celestial_wcs(header)
    if wcs is not None:
        ra, dec = wcs.all_pix2world(x, y, 0)
        out["ALPHA_J2000"], out["DELTA_J2000"] = ra, dec
    else:
        out["ALPHA_J2000"] = out["DELTA_J2000"] = np.nan
    return out


def list_ccds(
    path: str | Path, max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES
) -> list[tuple[int, str, tuple[int, int]]]:
    """Image HDUs of a file as (hdu index, name, (ny, nx)); validates the file first."""
    return [(c.index, c.name, c.shape) for c in validate_image(path, max_decompressed_bytes)]


def extract_hdu(
    path: str | Path,
    index: int,
    params: ExtractionParams | None = None,
    max_pixels: int = DEFAULT_MAX_CCD_PIXELS,
) -> np.ndarray:
    """Read one HDU and extract it: the unit of work for one worker / Celery task."""
    data, header = read_ccd(path, index, max_pixels=max_pixels)
    name = str(header.get("EXTNAME", f"HDU{index}"))
    return extract_ccd(data, header, params, ccd=ccd_number(name, max(index - 1, 0)), ext_number=index)


def tune_malloc() -> bool:
    """Tune a dedicated worker process for one CCD after another.

    Keep freed memory in this process's heap (glibc): each CCD allocates the same ~40 MB arrays, and
    getting them back from the kernel each time (mmap, page faults, zeroing) costs ~15% of the run;
    RSS then stays at its peak (~300 MB). And move everything imported so far out of the garbage
    collector's sight (``gc.freeze``): astropy's many objects made each full collection, triggered by
    header parsing, cost ~2% of a CCD. False if the malloc tuning is unsupported."""
    gc.freeze()
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_top_pad, m_mmap_max = -1, -2, -4
    return bool(
        libc.mallopt(m_mmap_max, 0)
        and libc.mallopt(m_trim_threshold, 2**31 - 1)
        and libc.mallopt(m_top_pad, 2**27)
    )


def _extract_hdu_with_peak(
    path: str, index: int, params: ExtractionParams, max_pixels: int = DEFAULT_MAX_CCD_PIXELS
) -> tuple[np.ndarray, dict[str, bytes], float, int, float]:
    """Worker entry point: rows, their text formats (made here, in parallel, rather than by the parent
    afterwards), this process's peak RSS (MB), its pid and CPU seconds so far."""
    rows = extract_hdu(path, index, params, max_pixels)
    text = textcols.text_formats(rows)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return rows, text, usage.ru_maxrss / 1024.0, os.getpid(), usage.ru_utime + usage.ru_stime


def merge_ccds(parts: list[np.ndarray]) -> np.ndarray:
    """Concatenate per-CCD results in CCD order (NUMBER keeps restarting at 1 per CCD)."""
    if not parts:
        return np.zeros(0, CATALOGUE_DTYPE)
    rows = np.concatenate(parts)
    return rows[np.argsort(rows["ccd"], kind="stable")]


def extract_file(
    path: str | Path,
    params: ExtractionParams | None = None,
    jobs: int = 1,
    progress: Callable[[int, int, str], None] | None = None,
    max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES,
    max_ccd_pixels: int = DEFAULT_MAX_CCD_PIXELS,
) -> Catalogue:
    """Extract every CCD of a FITS/MEF file; ``progress(done, total, ccd_name)`` after each CCD."""
    params = params or ExtractionParams.defaults()
    ccds = validate_image(path, max_decompressed_bytes, max_ccd_pixels)
    parts: dict[int, np.ndarray] = {}
    texts: dict[int, dict[str, bytes]] = {}
    done = 0
    peak_mb = 0.0
    cpu: dict[int, float] = {}  # cumulative CPU seconds per worker process
    if jobs <= 1 or len(ccds) == 1:
        start = resource.getrusage(resource.RUSAGE_SELF)
        for c in ccds:
            parts[c.index], texts[c.index], peak, _, used = _extract_hdu_with_peak(
                str(path), c.index, params, max_ccd_pixels
            )
            peak_mb = max(peak_mb, peak)
            cpu[0] = used - start.ru_utime - start.ru_stime
            done += 1
            if progress:
                progress(done, len(ccds), c.name)
    else:
        # fork starts workers at once with everything imported; with other threads alive (a web or
        # Celery process) forking could copy a held lock, so start clean from a forkserver then.
        ctx: multiprocessing.context.BaseContext
        if threading.active_count() == 1:
            ctx = multiprocessing.get_context("fork")
        else:
            ctx = server = multiprocessing.get_context("forkserver")
            server.set_forkserver_preload(
                ["numpy", "sep", "astropy.io.fits", "orchestration.catalogue.extract"]
            )
        with concurrent.futures.ProcessPoolExecutor(
            max_workers=jobs, mp_context=ctx, initializer=tune_malloc
        ) as pool:
            futures = {
                pool.submit(_extract_hdu_with_peak, str(path), c.index, params, max_ccd_pixels): c
                for c in ccds
            }
            for fut in concurrent.futures.as_completed(futures):
                c = futures[fut]
                parts[c.index], texts[c.index], peak, pid, used = fut.result()
                peak_mb = max(peak_mb, peak)
                cpu[pid] = max(cpu.get(pid, 0.0), used)
                done += 1
                if progress:
                    progress(done, len(ccds), c.name)
    catalogue = build_catalogue(path, params, ccds, parts, peak_mb, texts)
    catalogue.provenance["cpu_seconds"] = round(sum(cpu.values()), 2)
    return catalogue


def build_catalogue(
    path: str | Path,
    params: ExtractionParams,
    ccds: list[CcdInfo],
    parts: dict[int, np.ndarray],
    peak_mb: float | None = None,
    texts: dict[int, dict[str, bytes]] | None = None,
) -> Catalogue:
    """Merge per-CCD results ({HDU index: rows}, e.g. one Celery task per CCD) into a Catalogue
    with provenance; ``ccds`` is what ``validate_image`` returned; ``texts`` ({HDU index: the
    CCD's ``textcols.text_formats``}) are joined in the same order as the rows."""
    missing = [c.name for c in ccds if c.index not in parts]
    if missing:
        raise ValueError(f"no result for CCD(s) {', '.join(missing)}")
    ordered = [parts[c.index] for c in ccds]
    ccd_list = [
        (
            int(p["ccd"][0]) if len(p) else ccd_number(c.name, c.index - 1 if c.index else 0),
            c.name,
            c.shape,
            len(p),
        )
        for c, p in zip(ccds, ordered, strict=True)
    ]
    provenance: dict[str, Any] = {
        "input": Path(path).name,
        "software": "orchestration.catalogue (sep, SExtractor-like)",
        "parameters": params.to_dict(),
        "defaults": defaults_provenance(params),
        "versions": library_versions(),
    }
    if peak_mb is not None:
        provenance["worker_peak_rss_mb"] = round(peak_mb, 1)
    text = _join_texts(ccds, parts, ccd_list, texts or {})
    return Catalogue(rows=merge_ccds(ordered), provenance=provenance, ccds=ccd_list, text=text)


def _join_texts(
    ccds: list[CcdInfo],
    parts: dict[int, np.ndarray],
    ccd_list: list[tuple[int, str, tuple[int, int], int]],
    texts: dict[int, dict[str, bytes]],
) -> dict[str, bytes]:
    """Each text format's rows for the whole catalogue: the CCDs' in ``merge_ccds``'s order (a stable
    sort of the CCDs by number), for a format whose text every CCD has and can stand for its rows
    (``textcols.joinable``); the writer formats the merged rows for any other."""
    order = sorted(range(len(ccds)), key=lambda i: ccd_list[i][0])
    joined = {}
    for fmt in ("ascii_head", "csv"):
        chunks = [texts.get(ccds[i].index, {}).get(fmt) for i in order]
        if all(
            chunk is not None and textcols.joinable(fmt, parts[ccds[i].index], chunk)
            for i, chunk in zip(order, chunks, strict=True)
        ):
            joined[fmt] = b"".join(chunks)  # type: ignore[arg-type]
    return joined
