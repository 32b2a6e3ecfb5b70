"""A catalogue made by real Celery worker processes: one task per CCD, merged, stored with provenance."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.table import Table
from django.conf import settings

from orchestration.catalogue import textcols
from orchestration.catalogue.synth import SynthConfig, make_megacam_image
from portal.models import Catalogue, CatalogueCcd, Operation
from tests.conftest import make_user

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

OBS = f"wrk{os.getpid()}p"


def test_it_extracts_each_ccd_on_the_workers_and_stores_the_catalogue(
    client: Any, celery_worker_process: Any
) -> None:
    folder = Path(settings.ARCHIVE_DIR) / "CFHT"
    folder.mkdir(parents=True, exist_ok=True)
    image = folder / f"{OBS}.fits.fz"
    config = SynthConfig(stars_per_ccd=3000, galaxies_per_ccd=6000)
    truth = make_megacam_image(image, seed=5, n_ccds=3, shape=(500, 384), obs_id=OBS, config=config)
    try:
        user = make_user(f"dora{os.getpid()}", ["dora-survey"])
        client.force_login(user)
        response = client.post(
            "/catalogues/new/",
            {
                "source": "archive",
                "observation": OBS,
                "DETECT_THRESH": 1.5,
                "DETECT_MINAREA": 5,
                "DEBLEND_NTHRESH": 32,
                "DEBLEND_MINCONT": 0.005,
                "MAG_ZEROPOINT": 30,
                "BACK_SIZE": 64,
                "BACK_FILTERSIZE": 3,
                "PHOT_AUTOPARAMS": "2.5 3.5",
                "SATUR_LEVEL": 50000,
                "GAIN": 0,
                "CLEAN": "on",
                "FILTER": "on",
            },
        )
        assert response.status_code == 302
        cat = Catalogue.objects.get(owner=user)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            cat.refresh_from_db()
            if not cat.is_active:
                break
            time.sleep(0.3)
        assert cat.state == Catalogue.DONE, (
            cat.state,
            cat.error,
            Operation.objects.get(pk=cat.operation_id).error,
        )
        assert Operation.objects.get(pk=cat.operation_id).state == Operation.SUCCEEDED
        ccds = list(CatalogueCcd.objects.filter(catalogue=cat))
        assert [c.name for c in ccds] == ["ccd00", "ccd01", "ccd02"]
        assert all(c.state == "done" and c.attempts == 1 and c.seconds is not None for c in ccds)
        assert sum(c.n_sources or 0 for c in ccds) == cat.n_sources
        assert 50 < cat.n_sources < len(truth)  # the truth goes past the detection limit

        stored = Path(settings.STORAGE_ROOT) / user.username / "catalogues"
        table = Table.read(stored / f"{OBS}.cat.fits")
        assert len(table) == cat.n_sources
        assert set(table["ccd"]) == {0, 1, 2}
        provenance = json.loads((stored / f"{OBS}.provenance.json").read_text())
        assert provenance["input"] == f"archive:{OBS}"
        assert provenance["parameters"]["MAG_ZEROPOINT"] == 30
        assert set(provenance["versions"]) >= {"sep", "astropy", "numpy"}
        # The text formats are the CCD tasks' own rows, joined: exactly the merged rows formatted.
        rows = np.asarray(table.as_array())
        csv_lines = (stored / f"{OBS}.cat.csv").read_bytes().split(b"\n", 1)[1]
        assert not list(cat.work_dir.glob("ccd-*.txt"))  # joined into the files, then removed
        assert csv_lines == textcols.csv_rows(rows)
        ascii_text = (stored / f"{OBS}.cat").read_bytes()
        assert ascii_text.endswith(textcols.ascii_rows(rows)) and ascii_text.count(b"\n#") == 18
        # The previews the pages serve were rendered by the tasks.
        assert (cat.work_dir / "mosaic.png").stat().st_size > 1000
        assert all((cat.work_dir / f"ccd-{c.hdu_index}.png").is_file() for c in ccds)
        page = client.get(f"/catalogues/{cat.pk}/")
        assert f"{cat.n_sources}</strong> sources".encode() in page.content
    finally:
        image.unlink(missing_ok=True)
