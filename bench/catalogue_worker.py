"""A whole catalogue as a user gets it from the web: submit the form, until every format downloads.

Real Celery worker processes (2, as `make run` starts) on a real broker, the full 36-CCD synthetic
MegaCam image (catalogue_bench's, ~45,000 detections) in the local archive. Timed from the form's
POST (the form's own defaults, and DETECT_MINAREA 5) to the catalogue stored with every format
downloadable from its page (fetch, validation, one task per CCD with its cached preview, merge, the
formats and provenance written into the user's storage, the mosaic, then each download), against the
tutorial's run (`funpack -D` + `source-extractor` with Debian's default.sex) in the same run. Also:
the phases, the workers' CPU seconds and peak memory (VmHWM of each worker process), and the first
download of the VOTable as TABLEDATA (made on request). Run from the repository root, with Redis on
127.0.0.1 (or CELERY_BROKER_URL set):

    .venv/bin/python bench/catalogue_worker.py [--workdir /tmp/catbench] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _django import ROOT, setup_django  # noqa: E402


def start_worker(var_dir: Path) -> subprocess.Popen[bytes]:
    log = open(var_dir / "worker.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--loglevel", "WARNING"]
        + ["--concurrency", "2", "-n", f"bench-{os.getpid()}@%h", "--without-gossip", "--without-mingle"]
        + ["-Q", "celery,ops,ccd"],  # the default queue, and the lanes of operations and CCDs
        cwd=ROOT,
        env=dict(os.environ),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    time.sleep(1.0)
    return proc


def worker_usage(worker: subprocess.Popen[bytes]) -> dict[int, tuple[float, float]]:
    """{pid: (CPU seconds, peak RSS MB)} of the worker's pool processes."""
    usage = {}
    for child in psutil.Process(worker.pid).children():
        times = child.cpu_times()
        with open(f"/proc/{child.pid}/status") as fh:
            hwm = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM"))
        usage[child.pid] = (times.user + times.system, hwm / 1024.0)
    return usage


def form_values(**changes: Any) -> dict[str, Any]:
    from portal.forms.catalogues import NewCatalogueForm

    # The form as a user leaves it: every parameter at its default (booleans ticked as "on").
    form = {n: ("on" if f.initial is True else f.initial) for n, f in NewCatalogueForm.base_fields.items()}
    return {**{n: v for n, v in form.items() if v is not None and v is not False}, **changes}


def run_once(
    client: Any, observation: str, worker: subprocess.Popen[bytes], **changes: Any
) -> dict[str, Any]:
    from portal.models import Catalogue

    before = worker_usage(worker)
    start, start_epoch = time.perf_counter(), time.time()
    response = client.post("/catalogues/new/", {**form_values(**changes), "observation": observation})
    assert response.status_code == 302, response.content[:2000]
    cat = Catalogue.objects.latest("pk")
    while True:
        cat.refresh_from_db()
        if not cat.is_active:
            break
        time.sleep(0.02)
    stored = time.perf_counter() - start
    if cat.state != Catalogue.DONE:
        raise SystemExit(f"the catalogue failed: {cat.error}")
    for fmt in Catalogue.FORMATS:  # what the page offers, each downloaded once
        response = client.get(f"/catalogues/{cat.pk}/download/{fmt}/")
        assert response.status_code == 200, fmt
        assert b"".join(response.streaming_content), fmt
    wall = time.perf_counter() - start
    t0 = time.perf_counter()
    response = client.get(f"/catalogues/{cat.pk}/download/votable/?serialization=tabledata")
    assert response.status_code == 200 and b"".join(response.streaming_content)
    tabledata = time.perf_counter() - t0
    after = worker_usage(worker)
    ccds = list(cat.ccd_rows.all())
    first = min(c.dispatched for c in ccds if c.dispatched).timestamp()
    last = max(c.updated for c in ccds).timestamp()
    assert cat.finished is not None
    return {
        "wall": wall,
        "stored": stored,
        "fetch + validate": first - start_epoch,
        "extraction (CCD tasks)": last - first,
        "merge, store, mosaic": cat.finished.timestamp() - last,
        "downloads": wall - stored,
        "tabledata": tabledata,
        "cpu": sum(after[p][0] - before.get(p, (0.0, 0.0))[0] for p in after),
        "rss": max(v[1] for v in after.values()),
        "n": cat.n_sources,
        "ccd_median": statistics.median(c.seconds or 0.0 for c in ccds),
    }


def summary(values: list[float]) -> str:
    return f"{min(values):7.2f} {statistics.median(values):7.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/catbench"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/14")
    setup_django()
    import catalogue_bench  # the image and the tutorial's run
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.test import Client

    from orchestration.catalogue.synth import BENCH_CONFIG, make_megacam_image

    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    image = work / "1056213p-bench.fits.fz"
    if not image.exists():
        make_megacam_image(image, seed=2026, n_ccds=36, obs_id="1056213p", config=BENCH_CONFIG)
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
    results: dict[str, tuple[list[dict[str, Any]], list[dict[str, float]]]] = {}
    try:
        run_once(client, "1056213p", worker)  # warm-up: worker processes import and tune themselves
        for minarea in (None, 5):
            label = "form defaults (DETECT_MINAREA 3, default.sex)" if minarea is None else "DETECT_MINAREA 5"
            ours, refs = [], []
            for _ in range(args.repeat):  # interleaved, so both see the same load
                _, ref = catalogue_bench.tutorial(image, work, minarea)
                refs.append(ref)
                changes = {"DETECT_MINAREA": minarea} if minarea else {}
                ours.append(run_once(client, "1056213p", worker, **changes))
            results[label] = (ours, refs)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    print(
        "image: 36 CCDs of 2048 x 4612, Rice (SYNTHETIC); 2 Celery worker processes;"
        f" {args.repeat} runs, figures min / median"
    )
    for label, (ours, refs) in results.items():
        print(f"\n=== {label}: {ours[-1]['n']} sources ===")
        print(f"{'':50} {'min':>7} {'median':>7}")
        print(f"{'tutorial: funpack -D + source-extractor':50} {summary([r['wall'] for r in refs])}")
        print(f"{'portal: form POST to every format downloaded':50} {summary([o['wall'] for o in ours])}")
        for phase in ("fetch + validate", "extraction (CCD tasks)", "merge, store, mosaic", "downloads"):
            print(f"  {phase:48} {summary([o[phase] for o in ours])}")
        print(
            f"  {'per-CCD task (extraction + preview cache)':48} {summary([o['ccd_median'] for o in ours])}"
        )
        ratios = [o["wall"] / r["wall"] for o, r in zip(ours, refs, strict=True)]
        print(f"{'ratio portal / tutorial (same run)':50} {summary(ratios)}   target <= 0.60")
        print(f"{'CPU s: tutorial funpack + source-extractor, user':50} {summary([r['user'] for r in refs])}")
        print(f"{'CPU s: portal worker processes (sum)':50} {summary([o['cpu'] for o in ours])}")
        print(
            f"{'peak memory per worker process (MB)':50} {summary([o['rss'] for o in ours])}   target <= 400"
        )
        print(f"{'first TABLEDATA download (made on request)':50} {summary([o['tabledata'] for o in ours])}")


if __name__ == "__main__":
    main()
