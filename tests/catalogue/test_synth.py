from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from orchestration.catalogue.synth import make_ccd, make_megacam_image

from .conftest import DENSE, SMALL_SHAPE


def test_it_writes_a_labelled_megacam_like_mef(small_image: tuple[Path, Table]) -> None:
    path, truth = small_image
    with fits.open(path) as hdul:
        primary = hdul[0].header
        assert primary["SYNTHETC"] is True
        assert "SYNTHETIC" in primary["OBJECT"]
        for key in ("TELESCOP", "INSTRUME", "FILTER", "EXPTIME", "DATE-OBS"):
            assert key in primary
        assert [h.name.lower() for h in hdul[1:]] == ["ccd00", "ccd01", "ccd02"]
        for hdu in hdul[1:]:
            assert isinstance(hdu, fits.CompImageHDU)
            assert hdu.data.shape == SMALL_SHAPE
            assert hdu.data.dtype == np.uint16
    with fits.open(path, disable_image_compression=True) as raw:
        assert raw[1].header["ZCMPTYPE"] == "RICE_1"
        assert raw[1].header["ZBITPIX"] == 16
        assert raw[1].header["BZERO"] == 32768
    assert set(truth["ccd"]) == {0, 1, 2}
    assert (truth["KIND"] == "star").sum() > 100 and (truth["KIND"] == "galaxy").sum() > 100


def test_it_is_readable_by_funpack(small_image: tuple[Path, Table], tmp_path: Path) -> None:
    if not shutil.which("funpack"):
        pytest.skip("funpack is not installed")
    path, _ = small_image
    out = tmp_path / "plain.fits"
    subprocess.run(["funpack", "-O", str(out), str(path)], check=True, capture_output=True)
    with fits.open(out) as plain, fits.open(path) as packed:
        assert plain[2].header["BZERO"] == 32768
        assert np.array_equal(plain[2].data, packed[2].data)


def test_it_is_deterministic_from_the_seed() -> None:
    a, ta = make_ccd(1, seed=3, shape=(300, 200), cfg=DENSE)
    b, tb = make_ccd(1, seed=3, shape=(300, 200), cfg=DENSE)
    c, _ = make_ccd(1, seed=4, shape=(300, 200), cfg=DENSE)
    assert np.array_equal(a, b) and np.array_equal(ta["X_IMAGE"], tb["X_IMAGE"])
    assert not np.array_equal(a, c)


def test_it_draws_saturated_stars_with_bleed_trails() -> None:
    data, truth = make_ccd(0, seed=1, shape=(600, 400), cfg=DENSE)
    assert truth["SATURATED"].any()
    star = truth[truth["SATURATED"]][0]
    x, y = int(round(star["X_IMAGE"] - 1)), int(round(star["Y_IMAGE"] - 1))
    column = data[:, x]
    saturated_rows = np.nonzero(column >= 65535)[0]
    assert saturated_rows.size > 5 and abs(np.median(saturated_rows) - y) < 30


def test_it_refuses_a_bad_number_of_ccds(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        make_megacam_image(tmp_path / "x.fits.fz", n_ccds=0)
