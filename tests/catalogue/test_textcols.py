"""The column-at-a-time number formatting gives what printf gives."""

from __future__ import annotations

import numpy as np
import pytest

from orchestration.catalogue import textcols

VALUES = np.concatenate(
    [
        np.random.default_rng(3).normal(0, 1000, 3000),
        np.random.default_rng(4).normal(0, 1, 3000) * 10.0 ** np.random.default_rng(5).integers(-8, 8, 3000),
        [0.0, 0.5, 1.0, 9.99995, 99999.99999, -123.45678, 1e-30, 3.4e38, np.nan, np.inf, -np.inf],
    ]
)


def _rows(matrix: np.ndarray) -> list[str]:
    return [row.tobytes().decode() for row in matrix]


@pytest.mark.parametrize(("decimals", "width"), [(4, 11), (7, 11), (2, 5), (0, 6), (3, 9)])
def test_it_writes_fixed_point_as_printf(decimals: int, width: int) -> None:
    got = _rows(textcols.fixed(VALUES, decimals, width))
    expected = [f"%{width}.{decimals}f" % v for v in VALUES]
    assert len({len(g) for g in got}) == 1 and len(got[0]) >= width  # one column, right-justified
    # the last digit may differ only past double precision (16 significant digits)
    mismatched = [(g, e) for g, e in zip(got, expected, strict=True) if g.strip() != e.strip()]
    assert all(abs(float(g) - float(e)) <= 1e-15 * abs(float(e)) for g, e in mismatched), mismatched[:3]


@pytest.mark.parametrize("decimals", [8, 5, 0])
def test_it_writes_scientific_as_printf(decimals: int) -> None:
    got = _rows(textcols.scientific(VALUES, decimals))
    expected = [f"%.{decimals}e" % v for v in VALUES]
    assert [g.strip() for g in got] == [e.strip() for e in expected]


def test_it_writes_integers_as_printf() -> None:
    ints = np.random.default_rng(1).integers(-100_000, 100_000, 5000).astype(np.int32)
    assert _rows(textcols.integer(ints, 10)) == [f"{v:10d}" for v in ints]


def test_it_joins_columns_into_rows() -> None:
    cols = [textcols.integer(np.array([1, 22]), 3), textcols.fixed(np.array([1.5, -2.25]), 2, 6)]
    assert textcols.join_rows(cols, b",", b"<", b">\n") == b"<  1,  1.50>\n< 22, -2.25>\n"


@pytest.mark.parametrize(("decimals", "width"), [(7, 11), (2, 5), (0, 4)])
def test_it_writes_a_sign_on_every_value_with_plus_as_printf(decimals: int, width: int) -> None:
    # DELTA_J2000 is "%+11.7f" in the ASCII catalogue, as SExtractor writes it; without the huge
    # values (which send the whole column to Python's printf) the digits are made by integer arithmetic
    values = VALUES[np.abs(VALUES) < 1e9]
    got = _rows(textcols.column_text(values, f"%+{width}.{decimals}f"))
    expected = [f"%+{width}.{decimals}f" % v for v in values]
    assert len({len(g) for g in got}) == 1
    pairs = [(g.strip(), e.strip()) for g, e, v in zip(got, expected, values, strict=True) if np.isfinite(v)]
    assert all(g[0] in "+-" for g, _ in pairs)
    assert sum(g != e for g, e in pairs) <= len(pairs) // 100  # "rarely, in the last digit"
    assert all(g[0] == e[0] and abs(float(g) - float(e)) <= 1.01 * 10.0**-decimals for g, e in pairs)
    special = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, -1e-12, 1e-12])
    got = _rows(textcols.column_text(special, f"%+{width}.{decimals}f"))
    assert got == [f"%+{width}.{decimals}f" % v for v in special]  # +nan, +inf, -0.0 as printf
