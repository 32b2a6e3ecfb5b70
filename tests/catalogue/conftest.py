"""Small synthetic MegaCam-like images shared by the catalogue tests (made once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest
from astropy.table import Table

from orchestration.catalogue.synth import SynthConfig, make_megacam_image

SMALL_SHAPE = (700, 512)  # (ny, nx)
# Denser than a real field so a small CCD still holds a few hundred sources.
DENSE = SynthConfig(stars_per_ccd=5000, galaxies_per_ccd=9000, cosmics_per_ccd=600, bad_columns_per_ccd=20)


@pytest.fixture(scope="session")
def small_image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Table]:
    path = tmp_path_factory.mktemp("synth") / "1056215p.fits.fz"
    truth = make_megacam_image(path, seed=7, n_ccds=3, shape=SMALL_SHAPE, obs_id="1056215p", config=DENSE)
    return path, truth
