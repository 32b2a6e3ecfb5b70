"""Catalogue files: SExtractor ASCII_HEAD, FITS table, CSV, VOTable (write and read back).

Provenance (input, parameters, library versions) goes in the FITS header, VOTable INFO elements and a
``.provenance.json`` next to the files; ASCII_HEAD and CSV stay plain so other tools read them.

Every writer costs little, so all formats are written up front: the text formats are formatted a
column at a time (``textcols``), the VOTable is BINARY2 (columns packed with numpy, base64), which
astropy, TOPCAT and STILTS read. VOTable TABLEDATA, for tools that want XML text, is written on
request (``write_votable(..., serialization="tabledata")``).
"""

from __future__ import annotations

import base64
import csv
import json
import os
import re
import warnings
from pathlib import Path
from typing import Any, BinaryIO, NoReturn
from xml.parsers import expat
from xml.sax.saxutils import escape, quoteattr

import numpy as np
from astropy.io import fits
from astropy.io import votable as vo
from astropy.table import Table

from orchestration.catalogue import textcols
from orchestration.catalogue.extract import DESCRIPTIONS, UNITS, Catalogue
from orchestration.catalogue.validate import CatalogueInputError

REQUIRED_COLUMNS = ("NUMBER", "X_IMAGE", "Y_IMAGE", "MAG_AUTO")
SUFFIXES = {"ascii_head": ".cat", "fits": ".cat.fits", "csv": ".cat.csv", "votable": ".cat.vot"}
TABLEDATA_SUFFIX = ".tabledata.cat.vot"
PROVENANCE_SUFFIX = ".provenance.json"
_VOTABLE_TYPES = {"i": {1: "unsignedByte", 2: "short", 4: "int", 8: "long"}, "f": {4: "float", 8: "double"}}
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
    body = cat.text.get("ascii_head") or textcols.ascii_rows(cat.rows)
    _write_atomic(path, ("\n".join(lines) + "\n").encode() + body)
    return path


def _write_atomic(path: Path, data: bytes) -> None:
    """Readers (and a concurrent writer of the same file) never see half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{id(data)}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


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
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fits.HDUList([primary, hdu]).writeto(tmp, overwrite=True)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_csv(cat: Catalogue, path: str | Path) -> Path:
    path = Path(path)
    names = list(cat.rows.dtype.names or ())
    body = cat.text.get("csv") or textcols.csv_rows(cat.rows)
    _write_atomic(path, (",".join(names) + "\n").encode() + body)
    return path


def _votable_fields(rows: np.ndarray) -> str:
    fields = []
    for name in rows.dtype.names or ():
        dt = rows.dtype[name]
        datatype = _VOTABLE_TYPES.get("f" if dt.kind == "f" else "i", {}).get(dt.itemsize, "double")
        unit = UNITS.get(name, "").replace("count", "ct")
        unit_attr = f" unit={quoteattr(unit)}" if unit else ""
        desc = escape(DESCRIPTIONS.get(name, ""))
        fields.append(
            f'   <FIELD name={quoteattr(name)} datatype="{datatype}"{unit_attr}>'
            f"<DESCRIPTION>{desc}</DESCRIPTION></FIELD>"
        )
    return "\n".join(fields)


def _binary2(rows: np.ndarray) -> bytes:
    """VOTable BINARY2 rows: a null-flag bitmap (a bit per field, set for NaN), then the values, big
    endian; every field here has a fixed size, so a row is one numpy record."""
    names = list(rows.dtype.names or ())
    n_flags = (len(names) + 7) // 8
    record = [("_nulls", "u1", (n_flags,))] + [(n, rows.dtype[n].newbyteorder(">").str) for n in names]
    packed = np.zeros(len(rows), np.dtype(record))
    nulls = np.zeros((len(rows), n_flags * 8), bool)
    for i, name in enumerate(names):
        packed[name] = rows[name]
        if rows.dtype[name].kind == "f":
            nulls[:, i] = np.isnan(rows[name])
    packed["_nulls"] = np.packbits(nulls, axis=1)  # first field in the most significant bit
    return packed.tobytes()


def write_votable(cat: Catalogue, path: str | Path, serialization: str = "binary2") -> Path:
    """VOTable 1.4 with the rows as BINARY2 (compact, fast) or TABLEDATA (XML text)."""
    path = Path(path)
    if serialization not in ("binary2", "tabledata"):
        raise ValueError(f"unknown VOTable serialization {serialization!r}")
    prov = cat.provenance
    head = (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3"'
        ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
        ' <RESOURCE type="results">\n'
        f'  <INFO name="input" value={quoteattr(str(prov.get("input", "")))}/>\n'
        f'  <INFO name="provenance" value={quoteattr(json.dumps(prov))}/>\n'
        f'  <TABLE nrows="{len(cat.rows)}">\n{_votable_fields(cat.rows)}\n   <DATA>'
    ).encode()
    tail = b"</DATA>\n  </TABLE>\n </RESOURCE>\n</VOTABLE>\n"
    if serialization == "binary2":
        body = b'<BINARY2><STREAM encoding="base64">' + base64.b64encode(_binary2(cat.rows))
        body += b"</STREAM></BINARY2>"
    else:
        names = list(cat.rows.dtype.names or ())
        formats = [textcols.csv_printf(cat.rows.dtype, n) for n in names]
        text = textcols.text_rows(cat.rows, formats, b"</TD><TD>", b"<TR><TD>", b"</TD></TR>\n", b"NaN")
        body = b"<TABLEDATA>\n" + text.replace(b" ", b"") + b"</TABLEDATA>"
    _write_atomic(path, head + body + tail)
    return path


def write_all(cat: Catalogue, out_dir: str | Path, stem: str, tabledata: bool = False) -> dict[str, Path]:
    """Write every format next to each other as ``<stem><suffix>``, and the VOTable as TABLEDATA too
    when asked; returns {format: path}."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "ascii_head": write_ascii_head(cat, out_dir / f"{stem}{SUFFIXES['ascii_head']}"),
        "fits": write_fits(cat, out_dir / f"{stem}{SUFFIXES['fits']}"),
        "csv": write_csv(cat, out_dir / f"{stem}{SUFFIXES['csv']}"),
        "votable": write_votable(cat, out_dir / f"{stem}{SUFFIXES['votable']}"),
    }
    if tabledata:
        paths["votable_tabledata"] = write_votable(cat, out_dir / f"{stem}{TABLEDATA_SUFFIX}", "tabledata")
    prov = dict(cat.provenance, n_sources=len(cat), ccds=[list(c[:2]) + [list(c[2]), c[3]] for c in cat.ccds])
    provenance_path = out_dir / f"{stem}{PROVENANCE_SUFFIX}"
    _write_atomic(provenance_path, json.dumps(prov, indent=2).encode())
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
        "BINARY",
        "BINARY2",
        "STREAM",  # only inline (base64) data: a STREAM with an href is refused below
    ]
)


def _check_votable(fh: BinaryIO, name: str) -> None:
    def refuse(why: str) -> NoReturn:
        raise CatalogueInputError(
            f"{name}: {why}; only VOTables with inline TABLEDATA, BINARY or BINARY2 data are read"
        )

    def start(tag: str, attrs: dict[str, str]) -> None:
        local = tag.rsplit(" ", 1)[-1]
        if local not in _VOTABLE_ELEMENTS:
            refuse(f"the VOTable holds a <{local}> element")
        if local == "STREAM" and (
            any(a.rsplit(" ", 1)[-1] == "href" for a in attrs) or attrs.get("encoding") != "base64"
        ):
            refuse("the VOTable's data is not inline (a STREAM with an href, or not base64)")

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
