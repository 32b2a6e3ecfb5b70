"""A whole catalogue as a user gets it from the web: submit the form, wait until it is stored.

Real Celery worker processes (2, as `make run` starts) on a real broker, the full 36-CCD synthetic
MegaCam image in the local archive. Timed from the form's POST to the catalogue's "done" (fetch,
validation, one task per CCD with its cached preview, merge, the four formats and provenance written
into the user's storage, the mosaic), against `funpack -D` + `source-extractor` on the same image in
the same run (the tutorial's pipeline, which leaves one ASCII catalogue on disk). Run from the
repository root, with Redis on 127.0.0.1 (or CELERY_BROKER_URL set):

    .venv/bin/python bench/catalogue_worker.py [--workdir /tmp/bench] [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _django import ROOT, setup_django  # noqa: E402


def start_worker(var_dir: Path) -> subprocess.Popen[bytes]:
    log = open(var_dir / "worker.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--loglevel", "WARNING"]
        + ["--concurrency", "2", "-n", f"bench-{os.getpid()}@%h", "--without-gossip", "--without-mingle"],
        cwd=ROOT,
        env=dict(os.environ),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    time.sleep(1.0)
    return proc


def run_once(client: object, observation: str) -> tuple[float, object]:
    from portal.models import Catalogue

    start = time.perf_counter()
    from portal.forms.catalogues import NewCatalogueForm

    # The form as a user leaves it: every parameter at its default (booleans ticked as "on").
    form = {n: ("on" if f.initial is True else f.initial) for n, f in NewCatalogueForm.base_fields.items()}
    form = {n: v for n, v in form.items() if v is not None and v is not False}
    response = client.post("/catalogues/new/", {**form, "observation": observation})  # type: ignore[attr-defined]
    assert response.status_code == 302, response.content[:2000]
    cat = Catalogue.objects.latest("pk")
    while True:
        cat.refresh_from_db()
        if not cat.is_active:
            break
        time.sleep(0.05)
    wall = time.perf_counter() - start
    if cat.state != Catalogue.DONE:
        raise SystemExit(f"the catalogue failed: {cat.error}")
    return wall, cat


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench"))
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/14")
    setup_django()
    import catalogue_bench  # the image generator and the reference pipeline
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.test import Client

    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    image = work / "1056213p-synthetic.fits.fz"
    if not image.exists():
        from orchestration.catalogue.synth import make_megacam_image

        make_megacam_image(image, seed=2026, n_ccds=36, obs_id="1056213p")
    archive = Path(settings.ARCHIVE_DIR) / "CFHT"
    archive.mkdir(parents=True, exist_ok=True)
    try:
        os.link(image, archive / "1056213p.fits.fz")
    except OSError:  # another file system
        (archive / "1056213p.fits.fz").write_bytes(image.read_bytes())
    user = User.objects.create_user("bench", password="bench-password")
    client = Client()
    client.force_login(user)
    worker = start_worker(Path(settings.VAR_DIR))
    try:
        run_once(client, "1056213p")  # warm-up: worker processes import and tune themselves
        ours, refs = [], []
        for _ in range(args.repeat):
            _, t_ref = catalogue_bench.reference(image, work)
            refs.append(t_ref["funpack"] + t_ref["source-extractor"])
            wall, cat = run_once(client, "1056213p")
            ours.append(wall)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    from portal.models import CatalogueCcd

    per_ccd = sorted(CatalogueCcd.objects.filter(catalogue=cat).values_list("seconds", flat=True))
    best_ref, best = min(refs), min(ours)
    print(f"image: 36 CCDs of 2048 x 4612 (SYNTHETIC), {cat.n_sources} sources; 2 worker processes")
    print(f"funpack -D + source-extractor (best of {args.repeat})   {best_ref:6.2f} s")
    print(
        f"portal, form POST to stored catalogue (best of {args.repeat}) {best:6.2f} s   ratio {best / best_ref:.2f}"
    )
    print(
        f"  all runs: ours {', '.join(f'{t:.2f}' for t in ours)}; reference {', '.join(f'{t:.2f}' for t in refs)}"
    )
    print(f"  per-CCD task (extraction + preview cache): median {per_ccd[len(per_ccd) // 2]:.2f} s")
    print(f"  stored: {', '.join(sorted(cat.outputs.values()))}")


if __name__ == "__main__":
    main()
