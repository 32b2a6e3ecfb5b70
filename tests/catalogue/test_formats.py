from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from orchestration.catalogue.extract import Catalogue, extract_file
from orchestration.catalogue.formats import (
    read_ascii_head,
    read_catalogue,
    write_all,
    write_votable,
)
from orchestration.catalogue.textcols import ASCII_FORMATS
from orchestration.catalogue.validate import CatalogueInputError


@pytest.fixture(scope="module")
def written(small_image: tuple[Path, Table], tmp_path_factory: pytest.TempPathFactory):
    path, _ = small_image
    cat = extract_file(path)
    return cat, write_all(cat, tmp_path_factory.mktemp("out"), "1056215p")


@pytest.mark.parametrize("fmt", ["ascii_head", "fits", "csv", "votable"])
def test_it_round_trips_every_format(written, fmt: str) -> None:
    cat, paths = written
    back = read_catalogue(paths[fmt])
    assert len(back) == len(cat)
    for name in cat.rows.dtype.names:
        # ASCII_HEAD keeps SExtractor's printed precision (e.g. %5.1f for THETA_IMAGE)
        printf = ASCII_FORMATS.get(name, "%.7g") if fmt == "ascii_head" else "%.9g"
        decimals = int(printf.split(".")[1][0]) if "." in printf and printf.endswith("f") else None
        atol = 0.51 * 10.0**-decimals if decimals is not None else 0.0
        assert np.allclose(back.rows[name], cat.rows[name], rtol=2e-6, atol=atol, equal_nan=True), name


@pytest.mark.parametrize("fmt", ["fits", "votable"])
def test_it_keeps_provenance_inside_fits_and_votable(written, fmt: str) -> None:
    _, paths = written
    prov = read_catalogue(paths[fmt]).provenance
    assert prov["input"] == "1056215p.fits.fz"
    assert prov["parameters"]["DETECT_MINAREA"] == 3 and prov["parameters"]["DETECT_THRESH"] == 1.5
    assert prov["defaults"]["changed"] == {} and "default.sex" in prov["defaults"]["from"]
    assert set(prov["versions"]) >= {"sep", "astropy", "numpy"}


def test_it_writes_votable_tabledata_on_request_with_the_same_rows(written, tmp_path: Path) -> None:
    cat, paths = written
    assert b"<BINARY2>" in paths["votable"].read_bytes()
    path = write_votable(cat, tmp_path / "x.tabledata.cat.vot", "tabledata")
    assert b"<TABLEDATA>" in path.read_bytes()
    back = read_catalogue(path)
    assert back.provenance["parameters"] == json.loads(json.dumps(cat.provenance["parameters"]))
    for name in cat.rows.dtype.names:
        assert np.allclose(back.rows[name], cat.rows[name], rtol=2e-6, atol=0, equal_nan=True), name


def test_it_writes_a_provenance_file_and_the_csv_columns(written) -> None:
    cat, paths = written
    prov = json.loads(paths["provenance"].read_text())
    assert prov["n_sources"] == len(cat) and prov["parameters"]["MAG_ZEROPOINT"] == 0.0
    header = paths["csv"].read_text().splitlines()[0].split(",")
    assert {"ccd", "NUMBER", "X_IMAGE", "Y_IMAGE", "MAG_AUTO"} <= set(header)


def test_it_writes_ascii_head_that_astropy_reads_as_sextractor(written) -> None:
    cat, paths = written
    table = Table.read(paths["ascii_head"], format="ascii.sextractor")
    assert len(table) == len(cat) and table["X_IMAGE"].unit == "pixel"


def test_it_opens_a_catalogue_written_by_the_real_source_extractor(small_image, tmp_path: Path) -> None:
    exe = shutil.which("source-extractor") or shutil.which("sex")
    if exe is None:
        pytest.skip("source-extractor is not installed")
    path, _ = small_image
    plain = tmp_path / "image.fits"
    with fits.open(path) as hdul:
        fits.HDUList(
            [fits.PrimaryHDU(header=hdul[0].header)]
            + [fits.ImageHDU(h.data, h.header, name=h.name) for h in hdul[1:]]
        ).writeto(plain)
    shutil.copy("/usr/share/source-extractor/default.conv", tmp_path / "default.conv")
    (tmp_path / "default.param").write_text(
        "NUMBER\nX_IMAGE\nY_IMAGE\nMAG_AUTO\nMAGERR_AUTO\nMAG_APER(2)\nFLAGS\n"
    )
    subprocess.run(
        [
            exe,
            str(plain),
            "-DETECT_MINAREA",
            "5",
            "-PHOT_APERTURES",
            "5,10",
            "-CATALOG_TYPE",
            "ASCII_HEAD",
            "-CATALOG_NAME",
            "se.cat",
        ],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    se = read_catalogue(tmp_path / "se.cat")
    assert {"NUMBER", "MAG_APER", "MAG_APER_1", "MAGERR_AUTO", "ccd"} <= set(se.rows.dtype.names or ())
    assert set(se.rows["ccd"]) == {0, 1, 2}  # derived from NUMBER restarting at 1 on each CCD
    ours = extract_file(path).rows
    assert abs(len(se.rows) - len(ours)) <= 0.05 * len(ours)
    for ccd in (0, 1, 2):
        a, b = se.rows[se.rows["ccd"] == ccd], ours[ours["ccd"] == ccd]
        d = np.hypot(a["X_IMAGE"][:, None] - b["X_IMAGE"][None], a["Y_IMAGE"][:, None] - b["Y_IMAGE"][None])
        assert np.median(d.min(axis=1)) < 0.01


def test_it_says_which_columns_a_catalogue_lacks(tmp_path: Path) -> None:
    bad = tmp_path / "bad.cat"
    bad.write_text("#   1 NUMBER  Running object number\n#   2 X_IMAGE  x [pixel]\n1 10.0\n2 20.0\n")
    with pytest.raises(CatalogueInputError, match="lacks the column.*Y_IMAGE, MAG_AUTO"):
        read_ascii_head(bad)
    csv = tmp_path / "bad.csv"
    csv.write_text("NUMBER,ccd\n1,0\n")
    with pytest.raises(CatalogueInputError, match="lacks the column"):
        read_catalogue(csv)


def test_it_rejects_files_that_are_no_catalogue(tmp_path: Path) -> None:
    junk = tmp_path / "junk.txt"
    junk.write_text("hello world\n")
    with pytest.raises(CatalogueInputError, match="unknown catalogue format"):
        read_catalogue(junk)
    empty = tmp_path / "empty.cat"
    empty.write_text("")
    with pytest.raises(CatalogueInputError, match="empty"):
        read_catalogue(empty)


def test_it_writes_an_empty_catalogue(tmp_path: Path) -> None:
    from orchestration.catalogue.extract import CATALOGUE_DTYPE

    cat = Catalogue(rows=np.zeros(0, CATALOGUE_DTYPE), provenance={"input": "x.fits"})
    paths = write_all(cat, tmp_path, "x")
    assert len(read_catalogue(paths["fits"])) == 0
    assert len(read_catalogue(paths["ascii_head"])) == 0


def test_concurrent_writers_of_one_file_never_leave_half_of_it(written, tmp_path: Path) -> None:
    """Two first downloads of TABLEDATA at once: each writes a temporary file and renames it, so a
    reader sees no file or a whole one, and no temporary file is left."""
    import threading

    cat, _ = written
    target = tmp_path / "x.tabledata.cat.vot"
    seen: list[bytes] = []
    done = threading.Event()

    def read_while_writing() -> None:
        while not done.is_set():
            if target.exists():
                seen.append(target.read_bytes())

    reader = threading.Thread(target=read_while_writing)
    reader.start()
    writers = [threading.Thread(target=write_votable, args=(cat, target, "tabledata")) for _ in range(4)]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    done.set()
    reader.join()
    whole = target.read_bytes()
    assert whole.rstrip().endswith(b"</VOTABLE>")
    assert all(s == whole for s in seen)
    assert [p.name for p in tmp_path.iterdir()] == [target.name]
