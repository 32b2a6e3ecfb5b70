from __future__ import annotations

import csv
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from orchestration.catalogue.formats import read_catalogue


def test_it_writes_every_format_from_the_command_line(small_image, tmp_path: Path) -> None:
    path, _ = small_image
    out = StringIO()
    call_command("extract_catalogue", str(path), output=str(tmp_path), jobs=2, stdout=out)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "1056215p.cat",
        "1056215p.cat.csv",
        "1056215p.cat.fits",
        "1056215p.cat.vot",
        "1056215p.provenance.json",
    ]
    with (tmp_path / "1056215p.cat.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert {"ccd", "NUMBER", "X_IMAGE", "Y_IMAGE", "MAG_AUTO"} <= set(rows[0])
    assert len(rows) == len(read_catalogue(tmp_path / "1056215p.cat"))
    assert "ccd02 done (3/3)" in out.getvalue() or "done (3/3)" in out.getvalue()


def test_it_passes_sextractor_parameters(small_image, tmp_path: Path) -> None:
    path, _ = small_image
    call_command("extract_catalogue", str(path), output=str(tmp_path / "a"), stdout=StringIO())
    call_command(
        "extract_catalogue",
        str(path),
        output=str(tmp_path / "b"),
        detect_thresh=5.0,
        mag_zeropoint=30.0,
        stdout=StringIO(),
    )
    default = read_catalogue(tmp_path / "a" / "1056215p.cat.fits")
    strict = read_catalogue(tmp_path / "b" / "1056215p.cat.fits")
    assert len(strict) < len(default)
    assert strict.provenance["parameters"]["DETECT_THRESH"] == 5.0
    assert strict.rows["MAG_AUTO"].min() > 10.0  # zero point 30 applied


def test_it_reports_bad_input_as_a_command_error(tmp_path: Path) -> None:
    bad = tmp_path / "x.fits"
    bad.write_text("not fits")
    with pytest.raises(CommandError, match="not a FITS file"):
        call_command("extract_catalogue", str(bad), output=str(tmp_path / "out"), stdout=StringIO())


def test_it_writes_votable_tabledata_when_asked(small_image, tmp_path: Path) -> None:
    path, _ = small_image
    out = StringIO()
    call_command("extract_catalogue", str(path), output=str(tmp_path), votable_tabledata=True, stdout=out)
    tabledata = tmp_path / "1056215p.tabledata.cat.vot"
    assert b"<TABLEDATA>" in tabledata.read_bytes()
    assert b"<BINARY2>" in (tmp_path / "1056215p.cat.vot").read_bytes()
    assert len(read_catalogue(tabledata)) == len(read_catalogue(tmp_path / "1056215p.cat.fits"))
    assert "votable_tabledata:" in out.getvalue() and "DETECT_MINAREA" not in out.getvalue()
