"""Catalogue files: SExtractor ASCII_HEAD, FITS table, CSV, VOTable (write and read back).

Provenance (input, parameters, library versions) goes in the FITS header, VOTable INFO elements and a
``.provenance.json`` next to the files; ASCII_HEAD and CSV stay plain so other tools read them.
"""

from __future__ import annotations

import csv
import json
import re
import warnings
from pathlib import Path
from typing import Any, BinaryIO, NoReturn
from xml.parsers import expat

import numpy as np
from astropy.io import fits
from astropy.io import votable as vo
from astropy.table import Table

from orchestration.catalogue.extract import DESCRIPTIONS, UNITS, Catalogue
from orchestration.catalogue.validate import CatalogueInputError

REQUIRED_COLUMNS = ("NUMBER", "X_IMAGE", "Y_IMAGE", "MAG_AUTO")
SUFFIXES = {"ascii_head": ".cat", "fits": ".cat.fits", "csv": ".cat.csv", "votable": ".cat.vot"}
PROVENANCE_SUFFIX = ".provenance.json"
# printf formats close to SExtractor's own, so the ASCII file reads like one it wrote
_FORMATS = {
    "NUMBER": "%10d",
    "ccd": "%3d",
    "EXT_NUMBER": "%3d",
    "X_IMAGE": "%11.4f",
    "Y_IMAGE": "%11.4f",
    "ALPHA_J2000": "%11.7f",
    "DELTA_J2000": "%+11.7f",
    "FLUX_AUTO": "%12.7g",
    "FLUXERR_AUTO": "%12.7g",
    "MAG_AUTO": "%8.4f",
    "MAGERR_AUTO": "%8.4f",
    "KRON_RADIUS": "%5.2f",
    "FLUX_MAX": "%12.7g",
    "ISOAREA_IMAGE": "%9d",
    "A_IMAGE": "%9.3f",
    "B_IMAGE": "%9.3f",
    "THETA_IMAGE": "%5.1f",
    "FWHM_IMAGE": "%8.2f",
    "FLAGS": "%3d",
}
_HEAD_LINE = re.compile(r"^#\s*(\d+)\s+(\S+)\s*(.*?)\s*(?:\[(.*)\])?\s*$")


def write_ascii_head(cat: Catalogue, path: str | Path) -> Path:
    """SExtractor's ASCII_HEAD: '#   1 NAME  description  [unit]' lines, then one row per source."""
    path = Path(path)
    names = list(cat.rows.dtype.names or ())
    lines = []
    for i, name in enumerate(names, start=1):
        unit = UNITS.get(name, "")
        lines.append(
            f"#{i:4d} {name:<22s} {DESCRIPTIONS.get(name, ''):<58s}{' [' + unit + ']' if unit else ''}"
        )
    fmt = " ".join(_FORMATS.get(n, "%.7g") for n in names)
    with path.open("w") as fh:
        fh.write("\n".join(lines) + "\n")
        if len(cat.rows):
            np.savetxt(fh, cat.rows, fmt=fmt)
    return path


def _column_types(names: list[str]) -> list[tuple[str, str]]:
    ints = {"NUMBER", "ccd", "EXT_NUMBER", "FLAGS", "ISOAREA_IMAGE", "IMAFLAGS_ISO", "NITER_MODEL"}
    return [(n, "i8" if n in ints or n.startswith(("FLAGS", "ISOAREA")) else "f8") for n in names]


def _with_ccd(rows: np.ndarray) -> np.ndarray:
    """Add a 'ccd' column when missing: from EXT_NUMBER, else from where NUMBER restarts at 1."""
    names = rows.dtype.names or ()
    if "ccd" in names:
        return rows
    if "EXT_NUMBER" in names:
        ccd = np.asarray(rows["EXT_NUMBER"]) - 1
    elif "NUMBER" in names and len(rows):
        number = np.asarray(rows["NUMBER"])
        ccd = np.concatenate([[0], np.cumsum(number[1:] <= number[:-1])])
    else:
        ccd = np.zeros(len(rows), int)
    out = np.zeros(len(rows), rows.dtype.descr + [("ccd", "i2")])
    for n in names:
        out[n] = rows[n]
    out["ccd"] = np.clip(ccd, 0, None)
    return out


def _check_columns(rows: np.ndarray, source: str) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in (rows.dtype.names or ())]
    if missing:
        raise CatalogueInputError(
            f"{source}: the catalogue lacks the column(s) {', '.join(missing)}; "
            f"it needs at least {', '.join(REQUIRED_COLUMNS)}"
        )


def read_ascii_head(path: str | Path) -> Catalogue:
    """Read a SExtractor ASCII_HEAD catalogue (source-extractor's or ours); vector columns become NAME_i."""
    path = Path(path)
    cols: list[tuple[int, str]] = []
    n_header = 0
    with path.open("r", errors="replace") as fh:
        for line in fh:
            if not line.startswith("#"):
                break
            n_header += 1
            match = _HEAD_LINE.match(line)
            if match:
                cols.append((int(match.group(1)), match.group(2)))
    if not cols:
        raise CatalogueInputError(
            f"{path.name}: not a SExtractor ASCII_HEAD catalogue (no '# n NAME' header)"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data": an empty catalogue
            with path.open("rb") as fh:  # a file object: numpy opens a str as a path or URL
                table = np.loadtxt(fh, comments="#", ndmin=2, dtype=np.float64)
    except ValueError as exc:
        raise CatalogueInputError(f"{path.name}: unreadable catalogue row ({exc})") from exc
    n_fields = table.shape[1] if table.size else max(c for c, _ in cols)
    names: list[str] = []
    for k, (start, name) in enumerate(cols):
        stop = cols[k + 1][0] if k + 1 < len(cols) else n_fields + 1
        width = max(stop - start, 1)
        names += [name] if width == 1 else [name] + [f"{name}_{j}" for j in range(1, width)]
    if table.size and len(names) != table.shape[1]:
        raise CatalogueInputError(
            f"{path.name}: header lists {len(names)} columns, rows have {table.shape[1]}"
        )
    rows = np.zeros(len(table) if table.size else 0, _column_types(names))
    for j, name in enumerate(names):
        if table.size:
            rows[name] = table[:, j]
    _check_columns(rows, path.name)
    return Catalogue(rows=_with_ccd(rows), provenance={"input": path.name, "format": "ascii_head"})


def _to_table(cat: Catalogue) -> Table:
    table = Table(cat.rows)
    for name in table.colnames:
        if UNITS.get(name):
            table[name].unit = UNITS[name].replace("count", "ct")
        table[name].description = DESCRIPTIONS.get(name, "")
    return table


def write_fits(cat: Catalogue, path: str | Path) -> Path:
    path = Path(path)
    hdu = fits.BinTableHDU(cat.rows, name="CATALOGUE")
    for i, name in enumerate(cat.rows.dtype.names or (), start=1):
        if UNITS.get(name):
            hdu.header[f"TUNIT{i}"] = UNITS[name].replace("count", "ct")
    primary = fits.PrimaryHDU()
    prov = cat.provenance
    primary.header["INPUT"] = (str(prov.get("input", ""))[:68], "image the catalogue was extracted from")
    for key, lib in (("SEPVER", "sep"), ("APYVER", "astropy"), ("NPYVER", "numpy")):
        if lib in prov.get("versions", {}):
            primary.header[key] = (prov["versions"][lib], f"{lib} version")
    primary.header["PROVJSON"] = (json.dumps(prov), "provenance as JSON")
    fits.HDUList([primary, hdu]).writeto(path, overwrite=True)
    return path


def write_csv(cat: Catalogue, path: str | Path) -> Path:
    path = Path(path)
    names = list(cat.rows.dtype.names or ())
    with path.open("w", newline="") as fh:
        fh.write(",".join(names) + "\n")
        if len(cat.rows):
            # full precision: CSV is for programs, not for looking like SExtractor
            fmt = ",".join("%d" if cat.rows.dtype[n].kind in "iu" else "%.9g" for n in names)
            np.savetxt(fh, cat.rows, fmt=fmt)
    return path


def write_votable(cat: Catalogue, path: str | Path) -> Path:
    path = Path(path)
    votable = vo.from_table(_to_table(cat))
    resource = votable.resources[0]
    prov = cat.provenance
    resource.infos.append(vo.tree.Info(name="input", value=str(prov.get("input", ""))))
    resource.infos.append(vo.tree.Info(name="provenance", value=json.dumps(prov)))
    votable.to_xml(str(path))
    return path


def write_all(cat: Catalogue, out_dir: str | Path, stem: str) -> dict[str, Path]:
    """Write every format next to each other as ``<stem><suffix>``; returns {format: path}."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "ascii_head": write_ascii_head(cat, out_dir / f"{stem}{SUFFIXES['ascii_head']}"),
        "fits": write_fits(cat, out_dir / f"{stem}{SUFFIXES['fits']}"),
        "csv": write_csv(cat, out_dir / f"{stem}{SUFFIXES['csv']}"),
        "votable": write_votable(cat, out_dir / f"{stem}{SUFFIXES['votable']}"),
    }
    prov = dict(cat.provenance, n_sources=len(cat), ccds=[list(c[:2]) + [list(c[2]), c[3]] for c in cat.ccds])
    provenance_path = out_dir / f"{stem}{PROVENANCE_SUFFIX}"
    provenance_path.write_text(json.dumps(prov, indent=2))
    paths["provenance"] = provenance_path
    return paths


# What a VOTable may hold here: inline TABLEDATA only. STREAM (BINARY, BINARY2, FITS, PARQUET) makes
# astropy open its href, a URL or a file of the server; a DOCTYPE could declare entities that smuggle
# elements in. Checked with expat, as astropy parses, before astropy sees the file.
_VOTABLE_ELEMENTS = frozenset(
    [
        "VOTABLE",
        "RESOURCE",
        "DESCRIPTION",
        "DEFINITIONS",
        "COOSYS",
        "TIMESYS",
        "GROUP",
        "PARAM",
        "PARAMref",
        "FIELD",
        "FIELDref",
        "VALUES",
        "MIN",
        "MAX",
        "OPTION",
        "LINK",
        "INFO",
        "TABLE",
        "DATA",
        "TABLEDATA",
        "TR",
        "TD",
    ]
)


def _check_votable(fh: BinaryIO, name: str) -> None:
    def refuse(why: str) -> NoReturn:
        raise CatalogueInputError(f"{name}: {why}; only VOTables with inline TABLEDATA are read")

    def start(tag: str, attrs: object) -> None:
        local = tag.rsplit(" ", 1)[-1]
        if local not in _VOTABLE_ELEMENTS:
            refuse(f"the VOTable holds a <{local}> element")

    parser = expat.ParserCreate(namespace_separator=" ")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartElementHandler = start
    parser.StartDoctypeDeclHandler = lambda *_: refuse("the VOTable has a DOCTYPE")
    parser.EntityDeclHandler = lambda *_: refuse("the VOTable declares entities")
    parser.ExternalEntityRefHandler = lambda *_: refuse("the VOTable refers to an external entity")
    try:
        parser.ParseFile(fh)
    except expat.ExpatError as exc:
        raise CatalogueInputError(f"{name}: not a valid VOTable ({exc})") from exc


def _from_table(table: Table, source: str, provenance: dict[str, Any]) -> Catalogue:
    rows = np.asarray(table.filled() if table.has_masked_values else table.as_array())
    _check_columns(rows, source)
    return Catalogue(rows=_with_ccd(rows), provenance=provenance)


def read_catalogue(path: str | Path) -> Catalogue:
    """Open any catalogue this project writes, or a SExtractor ASCII_HEAD; the format is sniffed."""
    path = Path(path)
    if not path.is_file():
        raise CatalogueInputError(f"{path.name}: file not found")
    with path.open("rb") as fh:
        head = fh.read(2880)
    if not head:
        raise CatalogueInputError(f"{path.name}: the catalogue file is empty")
    try:
        if head.startswith(b"SIMPLE  ="):
            with path.open("rb") as fh, fits.open(fh) as hdul:
                tables = [h for h in hdul if isinstance(h, fits.BinTableHDU)]
                if not tables:
                    raise CatalogueInputError(f"{path.name}: FITS file without a table")
                prov = json.loads(hdul[0].header.get("PROVJSON", "{}") or "{}")
                table = Table(tables[0].data)
            return _from_table(table, path.name, prov or {"input": path.name})
        text = head.decode("utf-8", errors="replace").lstrip()
        if text.startswith("<?xml") or text.startswith("<VOTABLE"):
            with path.open("rb") as fh:
                _check_votable(fh, path.name)
                fh.seek(0)
                votable = vo.parse(fh)
            prov = {}
            for info in votable.resources[0].infos if votable.resources else []:
                if info.name == "provenance":
                    prov = json.loads(info.value)
            return _from_table(votable.get_first_table().to_table(), path.name, prov or {"input": path.name})
        if text.startswith("#"):
            return read_ascii_head(path)
        first = text.splitlines()[0] if text else ""
        if "," in first:
            with path.open(newline="") as lines:
                header = next(csv.reader(lines))
            with path.open("rb") as raw:
                table = Table.read(raw, format="ascii.csv", names=header, data_start=1)
            return _from_table(table, path.name, {"input": path.name})
    except CatalogueInputError:
        raise
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise CatalogueInputError(f"{path.name}: unreadable catalogue ({exc})") from exc
    raise CatalogueInputError(
        f"{path.name}: unknown catalogue format (expected ASCII_HEAD, FITS, CSV or VOTable)"
    )
