"""The tutorial's SExtractor defaults: Debian's ``default.sex`` and ``default.conv``.

The CANFAR tutorial's job copies ``/usr/share/source-extractor/default*`` and runs
``source-extractor IMAGE -CATALOG_NAME ID.cat``, so its parameters are those files. The portal's
defaults are read from them where source-extractor is installed and are otherwise the values built in
here, which are that ``default.sex``'s. Only the keys the engine uses are read (an allow-list); a value
that does not parse keeps the built-in one.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

CONFIG_DIR = Path("/usr/share/source-extractor")  # where Debian's source-extractor package puts them

# Debian's default.sex (source-extractor 2.25+), the keys the engine uses.
BUILT_IN: dict[str, Any] = {
    "DETECT_THRESH": 1.5,
    "DETECT_MINAREA": 3,
    "DEBLEND_NTHRESH": 32,
    "DEBLEND_MINCONT": 0.005,
    "CLEAN": True,
    "CLEAN_PARAM": 1.0,
    "FILTER": True,
    "MAG_ZEROPOINT": 0.0,
    "BACK_SIZE": 64,
    "BACK_FILTERSIZE": 3,
    "PHOT_AUTOPARAMS": (2.5, 3.5),
    "SATUR_LEVEL": 50000.0,
    "SATUR_KEY": "SATURATE",
    "GAIN": 0.0,
}
# default.conv: "3x3 all-ground convolution mask with FWHM = 2 pixels"
BUILT_IN_KERNEL = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=np.float32)


@dataclass(frozen=True)
class Defaults:
    values: dict[str, Any]
    kernel: np.ndarray
    source: str  # where the values came from, for the form and the provenance
    kernel_source: str


def _parse_value(key: str, text: str) -> Any:
    default = BUILT_IN[key]
    if isinstance(default, bool):
        if text.upper() not in ("Y", "N"):
            raise ValueError(text)
        return text.upper() == "Y"
    if isinstance(default, int):
        return int(text)
    if isinstance(default, float):
        return float(text)
    if isinstance(default, tuple):
        parts = tuple(float(p) for p in text.replace(",", " ").split())
        if len(parts) != len(default):
            raise ValueError(text)
        return parts
    return text


def parse_sex(text: str) -> dict[str, Any]:
    """The engine's keys from a SExtractor configuration file; others, and bad values, are skipped."""
    found: dict[str, Any] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        key, _, value = line.partition(" ")
        key, value = key.strip().upper(), value.strip()
        if key in BUILT_IN and value:
            try:
                found[key] = _parse_value(key, value)
            except ValueError:
                continue
    return found


def parse_conv(text: str) -> np.ndarray | None:
    """A ``CONV NORM``/``CONV NONORM`` filter file as a 2-d array, or None when it does not parse."""
    rows = []
    lines = [ln.strip() for ln in text.splitlines()]
    if not lines or not lines[0].upper().startswith("CONV"):
        return None
    for line in lines[1:]:
        if not line or line.startswith("#"):
            continue
        try:
            rows.append([float(v) for v in line.split()])
        except ValueError:
            return None
    if not rows or len({len(r) for r in rows}) != 1 or len(rows) > 31 or len(rows[0]) > 31:
        return None
    kernel = np.array(rows, dtype=np.float32)
    return kernel if np.isfinite(kernel).all() and kernel.sum() != 0 else None


@functools.cache
def tutorial_defaults(config_dir: Path = CONFIG_DIR) -> Defaults:
    """Debian's default.sex and default.conv where installed, else the same values built in."""
    values = dict(BUILT_IN)
    source = "built in (the values of Debian's default.sex)"
    sex = config_dir / "default.sex"
    try:
        values.update(parse_sex(sex.read_text(errors="replace")))
        source = str(sex)
    except OSError:
        pass
    kernel, kernel_source = BUILT_IN_KERNEL, "built in (Debian's default.conv, 3x3, FWHM 2 px)"
    conv = config_dir / "default.conv"
    try:
        read = parse_conv(conv.read_text(errors="replace"))
    except OSError:
        read = None
    if read is not None:
        kernel, kernel_source = read, str(conv)
    return Defaults(values=values, kernel=kernel, source=source, kernel_source=kernel_source)
