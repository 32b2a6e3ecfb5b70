"""The catalogue table (filter, sort, paginate in memory) and its plots as inline SVG."""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlencode

import numpy as np
from django.http import HttpRequest
from django.utils.html import escape

from orchestration.catalogue.render import magnitude_errors, magnitude_histogram

ROWS_PER_PAGE = 50
TABLE_COLUMNS = (  # shown when present, in this order
    ("ccd", "%d"),
    ("NUMBER", "%d"),
    ("X_IMAGE", "%.2f"),
    ("Y_IMAGE", "%.2f"),
    ("ALPHA_J2000", "%.6f"),
    ("DELTA_J2000", "%+.6f"),
    ("MAG_AUTO", "%.3f"),
    ("MAGERR_AUTO", "%.3f"),
    ("FLUX_AUTO", "%.5g"),
    ("A_IMAGE", "%.2f"),
    ("B_IMAGE", "%.2f"),
    ("THETA_IMAGE", "%.1f"),
    ("FWHM_IMAGE", "%.2f"),
    ("FLAGS", "%d"),
)
FLAG_FILTERS = {"": "Any FLAGS", "0": "FLAGS = 0", "lt4": "FLAGS < 4"}


def _float(value: str | None) -> float | None:
    try:
        number = float(value) if value not in (None, "") else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) else None


def _number(value: str) -> bool:
    """A plain decimal number int() reads (str.isdigit also takes '²', and int() refuses 4300+ digits)."""
    return value.isascii() and value.isdigit() and len(value) <= 18


def table_context(request: HttpRequest, rows: np.ndarray, base_url: str) -> dict[str, Any]:
    """One page of rows: filtered (CCD, magnitude range, FLAGS), sorted, and the focused source's page."""
    names = rows.dtype.names or ()
    columns = [(n, f) for n, f in TABLE_COLUMNS if n in names]
    get = request.GET
    keep = np.ones(len(rows), bool)
    ccd = get.get("ccd", "")
    if _number(ccd) and "ccd" in names:
        keep &= rows["ccd"] == int(ccd)
    mag_min, mag_max = _float(get.get("mag_min")), _float(get.get("mag_max"))
    if mag_min is not None:
        keep &= rows["MAG_AUTO"] >= mag_min
    if mag_max is not None:
        keep &= rows["MAG_AUTO"] <= mag_max
    flags = get.get("flags", "")
    if flags in ("0", "lt4") and "FLAGS" in names:
        keep &= rows["FLAGS"] == 0 if flags == "0" else rows["FLAGS"] < 4
    index = np.nonzero(keep)[0]
    sort = get.get("sort", "")
    key = sort.lstrip("-")
    if key in names:
        order = np.argsort(rows[key][index], kind="stable")
        index = index[order[::-1]] if sort.startswith("-") else index[order]
    else:
        sort = ""
    n_pages = max(1, math.ceil(len(index) / ROWS_PER_PAGE))
    try:
        page = min(max(int(get.get("page", "1")), 1), n_pages)
    except ValueError:
        page = 1
    focus = get.get("focus", "")
    focused = -1
    if _number(focus) and _number(ccd):
        hits = np.nonzero(rows["NUMBER"][index] == int(focus))[0]
        if hits.size:
            focused = int(index[hits[0]])
            page = int(hits[0]) // ROWS_PER_PAGE + 1
    shown = index[(page - 1) * ROWS_PER_PAGE : page * ROWS_PER_PAGE]
    body = []
    for i in shown:
        row = rows[i]
        cells = [_cell(row[n], f) for n, f in columns]
        body.append(
            {
                "ccd": int(row["ccd"]) if "ccd" in names else 0,
                "number": int(row["NUMBER"]),
                "cells": cells,
                "focused": int(i) == focused,
            }
        )
    state = {"ccd": ccd, "mag_min": get.get("mag_min", ""), "mag_max": get.get("mag_max", ""), "flags": flags}
    query = {k: v for k, v in {**state, "sort": sort}.items() if v}
    return {
        "columns": [
            {"name": n, "sort": f"-{n}" if sort == n else n, "active": key == n, "desc": sort == f"-{n}"}
            for n, _ in columns
        ],
        "rows": body,
        "base": base_url,
        "state": state,
        "sort": sort,
        "query": urlencode(query),
        "page": page,
        "n_pages": n_pages,
        "n_matching": len(index),
        "n_total": len(rows),
        "prev_url": f"{base_url}?{urlencode({**query, 'page': page - 1})}" if page > 1 else "",
        "next_url": f"{base_url}?{urlencode({**query, 'page': page + 1})}" if page < n_pages else "",
        "ccds": sorted({int(c) for c in rows["ccd"]}) if "ccd" in names and len(rows) else [],
        "flag_filters": FLAG_FILTERS,
    }


def _cell(value: Any, fmt: str) -> str:
    number = float(value)
    if not math.isfinite(number):
        return ""
    return fmt % (int(number) if fmt == "%d" else number)


def plots(rows: np.ndarray) -> dict[str, str]:
    """Server-rendered SVG: a MAG_AUTO histogram and MAGERR_AUTO against MAG_AUTO."""
    hist = magnitude_histogram(rows, 0.25)
    plots = {"histogram_svg": _histogram_svg(hist["edges"], hist["counts"]), "magerr_svg": ""}
    if "MAGERR_AUTO" in (rows.dtype.names or ()):
        errs = magnitude_errors(rows, max_points=4000)
        plots["magerr_svg"] = _scatter_svg(errs["mag"], errs["magerr"])
    return plots


W, H, PAD_L, PAD_B, PAD_T, PAD_R = 520, 260, 48, 34, 10, 12


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values (1, 2, 5 x 10^k steps) inside [lo, hi]."""
    raw = max(hi - lo, 1e-9) / n
    step = min((m * 10 ** math.floor(math.log10(raw)) for m in (1, 2, 5, 10)), key=lambda v: abs(v - raw))
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + i * step, 10) for i in range(int((hi - first) / step + 1e-9) + 1)]


def _axes(x0: float, x1: float, y0: float, y1: float, xlabel: str, ylabel: str) -> list[str]:
    """Frame, round ticks, grid and labels; returns SVG elements."""
    pw, ph = W - PAD_L - PAD_R, H - PAD_T - PAD_B
    out = [f'<rect x="{PAD_L}" y="{PAD_T}" width="{pw}" height="{ph}" class="frame"/>']
    for v in _ticks(x0, x1, 6):
        x = PAD_L + pw * (v - x0) / max(x1 - x0, 1e-9)
        out.append(f'<text x="{x:.1f}" y="{H - PAD_B + 14}" text-anchor="middle">{v:g}</text>')
    for v in _ticks(y0, y1, 4):
        y = H - PAD_B - ph * (v - y0) / max(y1 - y0, 1e-9)
        out.append(f'<text x="{PAD_L - 5}" y="{y + 3:.1f}" text-anchor="end">{v:g}</text>')
        out.append(f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
    out.append(
        f'<text x="{(W + PAD_L) / 2}" y="{H - 4}" text-anchor="middle" class="label">{escape(xlabel)}</text>'
    )
    out.append(
        f'<text transform="translate(12 {(H - PAD_B) / 2}) rotate(-90)" text-anchor="middle" class="label">'
        f"{escape(ylabel)}</text>"
    )
    return out


def _svg(parts: list[str], title: str) -> str:
    return (
        f'<svg viewBox="0 0 {W} {H}" class="plot" role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>{''.join(parts)}</svg>"
    )


def _histogram_svg(edges: list[float], counts: list[float]) -> str:
    if not counts:
        return ""
    x0, x1, top = edges[0], edges[-1], max(max(counts), 1)
    sx = (W - PAD_L - PAD_R) / max(x1 - x0, 1e-9)
    sy = (H - PAD_T - PAD_B) / top
    parts = _axes(x0, x1, 0, top, "MAG_AUTO", "sources per 0.25 mag")
    for lo, hi, n in zip(edges[:-1], edges[1:], counts, strict=True):
        x, w, h = PAD_L + (lo - x0) * sx, (hi - lo) * sx, n * sy
        parts.append(
            f'<rect x="{x:.1f}" y="{H - PAD_B - h:.1f}" width="{max(w - 1, 0.5):.1f}" height="{h:.1f}" '
            f'class="bar"><title>{lo:.2f}–{hi:.2f}: {n}</title></rect>'
        )
    return _svg(parts, "Magnitude histogram")


def _scatter_svg(mags: list[float], errs: list[float]) -> str:
    if not mags:
        return ""
    x0, x1 = math.floor(min(mags)), math.ceil(max(mags))
    y1 = min(max(errs), 1.0) or 1.0
    sx = (W - PAD_L - PAD_R) / max(x1 - x0, 1e-9)
    sy = (H - PAD_T - PAD_B) / y1
    parts = _axes(x0, x1, 0, y1, "MAG_AUTO", "MAGERR_AUTO")
    dots = "".join(
        f"M{PAD_L + (m - x0) * sx:.1f} {H - PAD_B - min(e, y1) * sy:.1f}h0"
        for m, e in zip(mags, errs, strict=True)
    )
    parts.append(f'<path d="{dots}" class="dots"/>')
    return _svg(parts, "Magnitude error against magnitude")


# ---------------------------------------------------------------------------- dashboard
