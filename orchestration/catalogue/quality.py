"""Compare a catalogue with a truth table: matching, completeness, false detections, scatter."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def match_nearest(
    x1: np.ndarray, y1: np.ndarray, x2: np.ndarray, y2: np.ndarray, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """For each point of set 1, the index of the nearest point of set 2 within radius (-1 if none)
    and its distance. Sorts set 2 along x so each point only looks at a narrow window."""
    order = np.argsort(x2)
    xs, ys = x2[order], y2[order]
    lo = np.searchsorted(xs, x1 - radius, "left")
    hi = np.searchsorted(xs, x1 + radius, "right")
    best = np.full(len(x1), -1, int)
    dist = np.full(len(x1), np.inf)
    for i in np.nonzero(hi > lo)[0]:
        d = np.hypot(xs[lo[i] : hi[i]] - x1[i], ys[lo[i] : hi[i]] - y1[i])
        k = int(np.argmin(d))
        if d[k] <= radius:
            best[i], dist[i] = order[lo[i] + k], d[k]
    return best, dist


def match_by_ccd(det: np.ndarray, truth: np.ndarray, radius: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """(truth -> detection index, detection -> truth index), -1 when unmatched, per CCD."""
    t2d = np.full(len(truth), -1, int)
    d2t = np.full(len(det), -1, int)
    for ccd in np.unique(np.concatenate([det["ccd"], truth["ccd"]])):
        ti = np.nonzero(truth["ccd"] == ccd)[0]
        di = np.nonzero(det["ccd"] == ccd)[0]
        if len(ti) == 0 or len(di) == 0:
            continue
        tx, ty = truth["X_IMAGE"][ti], truth["Y_IMAGE"][ti]
        dx, dy = det["X_IMAGE"][di], det["Y_IMAGE"][di]
        m, _ = match_nearest(tx, ty, dx, dy, radius)
        t2d[ti[m >= 0]] = di[m[m >= 0]]
        m, _ = match_nearest(dx, dy, tx, ty, radius)
        d2t[di[m >= 0]] = ti[m[m >= 0]]
    return t2d, d2t


def robust_std(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan")
    return float(1.4826 * np.median(np.abs(values - np.median(values))))


@dataclass
class Quality:
    """Accuracy of a catalogue against truth (magnitudes in the truth's system)."""

    bins: np.ndarray  # bin edges
    completeness: np.ndarray  # stars, per bin
    completeness_all: np.ndarray  # stars and galaxies, per bin
    mag50: float  # 50 % completeness magnitude for stars
    n_detected: int
    n_false: int
    position_scatter: float  # px, robust, bright unsaturated stars
    mag_scatter: float  # mag, robust, bright unsaturated stars
    mag_offset: float  # median MAG_AUTO - true mag, bright unsaturated stars


def mag_at_completeness(bins: np.ndarray, comp: np.ndarray, level: float = 0.5) -> float:
    """Interpolated magnitude (towards faint, i.e. increasing mag) where completeness falls below level."""
    centres = 0.5 * (bins[1:] + bins[:-1])
    ok = np.isfinite(comp)
    c, m = comp[ok], centres[ok]
    for i in range(len(c) - 1):
        if c[i] >= level > c[i + 1]:
            return float(m[i] + (c[i] - level) / (c[i] - c[i + 1]) * (m[i + 1] - m[i]))
    return float("nan")


def assess(
    det: np.ndarray, truth: np.ndarray, bins: np.ndarray, bright: tuple[float, float], radius: float = 2.0
) -> Quality:
    """Completeness per bin, false detections and scatter; ``bright`` is the mag range for scatter."""
    t2d, d2t = match_by_ccd(det, truth, radius)
    found = t2d >= 0
    star = truth["KIND"] == "star"
    which = np.digitize(truth["MAG"], bins) - 1
    comp = np.full(len(bins) - 1, np.nan)
    comp_all = np.full(len(bins) - 1, np.nan)
    for b in range(len(bins) - 1):
        sel = which == b
        if (sel & star).sum():
            comp[b] = found[sel & star].mean()
        if sel.sum():
            comp_all[b] = found[sel].mean()
    good = found & star & ~truth["SATURATED"] & (truth["MAG"] > bright[0]) & (truth["MAG"] < bright[1])
    d = det[t2d[good]]
    dpos = np.hypot(d["X_IMAGE"] - truth["X_IMAGE"][good], d["Y_IMAGE"] - truth["Y_IMAGE"][good])
    dmag = d["MAG_AUTO"] - truth["MAG"][good]
    return Quality(
        bins=bins,
        completeness=comp,
        completeness_all=comp_all,
        mag50=mag_at_completeness(bins, comp),
        n_detected=len(det),
        n_false=int((d2t < 0).sum()),
        position_scatter=float(np.sqrt(np.median(dpos**2))) if dpos.size else float("nan"),
        mag_scatter=robust_std(dmag),
        mag_offset=float(np.median(dmag)) if dmag.size else float("nan"),
    )
