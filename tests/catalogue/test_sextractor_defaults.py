"""The portal's defaults are the tutorial's: Debian's default.sex and default.conv, checked against the
real source-extractor run as the tutorial's do_catalogue.bash runs it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from orchestration.catalogue.extract import ExtractionParams, extract_file
from orchestration.catalogue.formats import read_catalogue
from orchestration.catalogue.sexdefaults import (
    BUILT_IN,
    BUILT_IN_KERNEL,
    parse_conv,
    parse_sex,
    tutorial_defaults,
)
from portal.forms.catalogues import ParametersForm

DEBIAN = Path("/usr/share/source-extractor")


def _form_params() -> ExtractionParams:
    """What the form posts when the user leaves every parameter as it is shown."""
    form = ParametersForm()
    data = {}
    for name in ParametersForm.PARAMETER_NAMES:
        initial = form[name].initial
        if initial is True:
            data[name] = "on"
        elif initial is not False:
            data[name] = str(initial)
    bound = ParametersForm(data)
    assert bound.is_valid(), bound.errors
    assert bound.params is not None
    return bound.params


def test_the_built_in_values_are_debians_default_sex() -> None:
    if not (DEBIAN / "default.sex").is_file():
        pytest.skip("source-extractor's default.sex is not installed")
    assert parse_sex((DEBIAN / "default.sex").read_text()) == BUILT_IN
    kernel = parse_conv((DEBIAN / "default.conv").read_text())
    assert kernel is not None and kernel.tolist() == [[1, 2, 1], [2, 4, 2], [1, 2, 1]]
    assert tutorial_defaults().source == str(DEBIAN / "default.sex")


def test_the_defaults_are_built_in_when_the_files_are_missing_or_bad(tmp_path: Path) -> None:
    missing = tutorial_defaults(tmp_path / "none")
    assert missing.values == BUILT_IN and "built in" in missing.source and "built in" in missing.kernel_source
    (tmp_path / "default.sex").write_text(
        "DETECT_MINAREA  7   # a site's own\nDETECT_THRESH   lots\nCATALOG_NAME /etc/passwd\nFILTER N\n"
    )
    (tmp_path / "default.conv").write_text("CONV NORM\n1 x\n")
    edited = tutorial_defaults(tmp_path)
    assert edited.values["DETECT_MINAREA"] == 7 and edited.values["FILTER"] is False
    assert edited.values["DETECT_THRESH"] == 1.5  # did not parse: the built-in value
    assert "CATALOG_NAME" not in edited.values  # only the keys the engine uses
    assert np.array_equal(edited.kernel, BUILT_IN_KERNEL) and "built in" in edited.kernel_source


def test_the_form_shows_the_tutorials_defaults() -> None:
    params = _form_params()
    assert params == ExtractionParams.defaults()
    assert params.DETECT_MINAREA == 3 and params.DETECT_THRESH == 1.5 and params.FILTER


def test_the_form_defaults_find_what_the_tutorials_source_extractor_finds(
    small_image: tuple[Path, Table], tmp_path: Path
) -> None:
    exe = shutil.which("source-extractor")
    funpack = shutil.which("funpack")
    if exe is None or funpack is None or not (DEBIAN / "default.sex").is_file():
        pytest.skip("source-extractor and funpack (libcfitsio-bin) are not installed")
    path, _ = small_image
    # do_catalogue.bash: funpack -D, cp /usr/share/source-extractor/default* ., its default.param
    shutil.copy(path, tmp_path / "1056215p.fits.fz")
    subprocess.run([funpack, "-D", "1056215p.fits.fz"], cwd=tmp_path, check=True, capture_output=True)
    for f in DEBIAN.glob("default*"):
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "default.param").write_text("NUMBER\nMAG_AUTO\nX_IMAGE\nY_IMAGE\n")
    subprocess.run(
        [exe, "1056215p.fits", "-CATALOG_NAME", "1056215p.cat"], cwd=tmp_path, check=True, capture_output=True
    )
    theirs = read_catalogue(tmp_path / "1056215p.cat").rows
    ours = extract_file(path, _form_params()).rows
    assert len(theirs) > 300
    assert abs(len(ours) - len(theirs)) <= 0.01 * len(theirs), (len(ours), len(theirs))
    for ccd in (0, 1, 2):
        assert (
            abs((ours["ccd"] == ccd).sum() - (theirs["ccd"] == ccd).sum())
            <= 0.05 * (theirs["ccd"] == ccd).sum()  # about a hundred each: allow their noise
        )
