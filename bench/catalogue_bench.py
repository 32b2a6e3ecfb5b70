"""The catalogue command against the tutorial's run, on a full-size synthetic 36-CCD MegaCam-like image.

Timed from each command's start to every file its user gets, side by side in one run:
- the tutorial's job (``do_catalogue.bash``): ``funpack -D``, Debian's ``default.sex`` and
  ``default.conv``, its 4-column ``default.param``, ``source-extractor IMAGE -CATALOG_NAME ID.cat``;
  at its defaults (DETECT_MINAREA 3) and with ``-DETECT_MINAREA 5``;
- ``manage.py extract_catalogue IMAGE --output DIR --jobs N`` at the same parameters, which leaves
  ASCII_HEAD, FITS, CSV, VOTable and provenance.
Prints wall time and its phases, CPU seconds, peak memory per worker, the ratio to the tutorial's
run, and accuracy against the truth (50 % completeness, detections, position and MAG_AUTO scatter).
Run from the repository root (the image is made once in --workdir):

    .venv/bin/python bench/catalogue_bench.py [--workdir /tmp/catbench] [--jobs 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from astropy.table import Table  # noqa: E402

from orchestration.catalogue.formats import read_catalogue  # noqa: E402
from orchestration.catalogue.quality import Quality, assess  # noqa: E402
from orchestration.catalogue.synth import BENCH_CONFIG, make_megacam_image  # noqa: E402

TUTORIAL_PARAMS = "NUMBER\nMAG_AUTO\nX_IMAGE\nY_IMAGE\n"  # do_catalogue.bash's default.param
DEBIAN = Path("/usr/share/source-extractor")
BINS = np.arange(-17.0, -4.49, 0.25)
BRIGHT = (-13.0, -10.0)  # unsaturated, high S/N stars for the scatter figures

# Runs a command from a small, freshly started Python and reports that command's own usage: a child
# forked straight from this process would count this process's memory (its RSS before exec).
LAUNCHER = """
import os, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - start
with open(sys.argv[1], "w") as out:
    out.write(f"{wall} {usage.ru_maxrss} {usage.ru_utime + usage.ru_stime} {usage.ru_utime}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_child(cmd: list[str], cwd: Path) -> tuple[dict[str, float], str]:
    """Run a command; its wall seconds, peak RSS MB, CPU and user seconds (its children included)."""
    report = cwd / ".child-usage"
    proc = subprocess.run(
        [sys.executable, "-S", "-c", LAUNCHER, str(report), *cmd],
        cwd=cwd,
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(
            f"{cmd[0]} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')[-2000:]}"
        )
    wall, maxrss_kb, cpu, user = (float(v) for v in report.read_text().split())
    report.unlink()
    return {"wall": wall, "rss": maxrss_kb / 1024.0, "cpu": cpu, "user": user}, proc.stdout.decode()


def tutorial(image: Path, work: Path, minarea: int | None) -> tuple[np.ndarray, dict[str, float]]:
    ref = work / "ref"
    shutil.rmtree(ref, ignore_errors=True)
    ref.mkdir()
    shutil.copy(image, ref / "1056213p.fits.fz")  # funpack -D deletes its input
    for f in DEBIAN.glob("default*"):
        shutil.copy(f, ref / f.name)
    (ref / "default.param").write_text(TUTORIAL_PARAMS)
    fp, _ = run_child(["funpack", "-D", "1056213p.fits.fz"], ref)
    cmd = ["source-extractor", "1056213p.fits", "-CATALOG_NAME", "1056213p.cat", "-VERBOSE_TYPE", "QUIET"]
    se, _ = run_child(cmd + (["-DETECT_MINAREA", str(minarea)] if minarea else []), ref)
    rows = read_catalogue(ref / "1056213p.cat").rows
    shutil.rmtree(ref)
    return rows, {
        "wall": fp["wall"] + se["wall"],
        "funpack": fp["wall"],
        "source-extractor": se["wall"],
        "cpu": fp["cpu"] + se["cpu"],
        "user": fp["user"] + se["user"],
        "rss": max(fp["rss"], se["rss"]),
    }


def ours(image: Path, work: Path, jobs: int, minarea: int | None) -> tuple[np.ndarray, dict[str, float]]:
    out = work / "ours"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, str(ROOT / "manage.py"), "extract_catalogue", str(image), "--output", str(out)]
    cmd += ["--jobs", str(jobs), "--verbosity", "0"]
    usage, stdout = run_child(cmd + (["--detect-minarea", str(minarea)] if minarea else []), ROOT)
    stem = image.name.removesuffix(".fits.fz")
    expected = {
        f"{stem}{suffix}" for suffix in (".cat", ".cat.fits", ".cat.csv", ".cat.vot", ".provenance.json")
    }
    assert expected <= {p.name for p in out.iterdir()}, "a format is missing"
    phases = re.search(r"extraction ([\d.]+) s, files ([\d.]+) s", stdout)
    assert phases, stdout
    cat = read_catalogue(out / f"{stem}.cat.fits")
    usage["extraction"], usage["files"] = float(phases.group(1)), float(phases.group(2))
    usage["start-up"] = usage["wall"] - usage["extraction"] - usage["files"]
    usage["worker_rss"] = float(cat.provenance["worker_peak_rss_mb"])
    usage["worker_cpu"] = float(cat.provenance["cpu_seconds"])
    return cat.rows, usage


def summary(values: list[float]) -> str:
    return f"{min(values):7.2f} {statistics.median(values):7.2f}"


def print_quality(label: str, q_ours: Quality, q_ref: Quality) -> None:
    rows = [
        ("50% completeness mag (stars)", q_ours.mag50, q_ref.mag50, "%.3f"),
        ("detections", q_ours.n_detected, q_ref.n_detected, "%d"),
        ("false detections (no truth within 2 px)", q_ours.n_false, q_ref.n_false, "%d"),
        ("position scatter, bright stars (px, rms)", q_ours.position_scatter, q_ref.position_scatter, "%.4f"),
        ("MAG_AUTO - true, bright stars: robust std", q_ours.mag_scatter, q_ref.mag_scatter, "%.4f"),
        ("MAG_AUTO - true, bright stars: median", q_ours.mag_offset, q_ref.mag_offset, "%.4f"),
    ]
    print(f"\nAccuracy, {label}{'':<14} {'ours':>10} {'tutorial':>10}")
    for name, a, b, fmt in rows:
        print(f"  {name:44} {fmt % a:>10} {fmt % b:>10}")
    d_count = (q_ours.n_detected - q_ref.n_detected) / q_ref.n_detected
    print(
        f"  detections differ by {100 * d_count:+.2f} % (target within 1 %);"
        f" 50 % completeness by {q_ours.mag50 - q_ref.mag50:+.3f} mag (target within 0.05)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workdir", type=Path, default=None, help="keeps the synthetic image between runs")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each pipeline (min and median shown)")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    if shutil.which("source-extractor") is None or shutil.which("funpack") is None:
        raise SystemExit(
            "needs source-extractor and funpack (apt-get install source-extractor libcfitsio-bin)"
        )
    work = args.workdir or Path(tempfile.mkdtemp(prefix="catalogue-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    image, truth_path = work / "1056213p-bench.fits.fz", work / "1056213p-bench-truth.fits"
    if not image.exists() or not truth_path.exists():
        truth = make_megacam_image(image, seed=args.seed, n_ccds=36, obs_id="1056213p", config=BENCH_CONFIG)
        truth.write(truth_path, overwrite=True)
    truth = Table.read(truth_path)
    print(
        f"image: {image.name} (SYNTHETIC), 36 CCDs of 2048 x 4612, Rice, {image.stat().st_size / 1e6:.0f} MB;"
        f" {len(truth)} true sources; {os.cpu_count()} cores; {args.repeat} runs, figures min / median"
    )

    for minarea in (None, 5):
        label = "DETECT_MINAREA 3 (default.sex)" if minarea is None else "DETECT_MINAREA 5"
        refs, mine = [], []
        for _ in range(args.repeat):  # interleaved, so both see the same load
            ref_rows, r = tutorial(image, work, minarea)
            our_rows, o = ours(image, work, args.jobs, minarea)
            refs.append(r)
            mine.append(o)
        print(f"\n=== {label} ===")
        print(f"{'':44} {'min':>7} {'median':>7}")
        print(f"tutorial: funpack -D                         {summary([r['funpack'] for r in refs])}")
        print(
            f"tutorial: source-extractor                   {summary([r['source-extractor'] for r in refs])}"
        )
        print(f"tutorial: total wall                         {summary([r['wall'] for r in refs])}")
        print(f"ours: manage.py extract_catalogue --jobs {args.jobs}   {summary([o['wall'] for o in mine])}")
        for phase in ("start-up", "extraction", "files"):
            print(f"  {phase:42} {summary([o[phase] for o in mine])}")
        ratios = [o["wall"] / r["wall"] for o, r in zip(mine, refs, strict=True)]
        print(f"ratio ours / tutorial (same run)             {summary(ratios)}   target <= 0.50")
        print("CPU seconds")
        print(f"  tutorial: funpack + source-extractor, user {summary([r['user'] for r in refs])}")
        print(f"  ours: extraction workers (sum)             {summary([o['worker_cpu'] for o in mine])}")
        print(f"  ours: whole command (start-up, files too)  {summary([o['cpu'] for o in mine])}")
        cpu_ratio = [o["worker_cpu"] / r["user"] for o, r in zip(mine, refs, strict=True)]
        print(f"  extraction CPU / tutorial's user time      {summary(cpu_ratio)}   target <= 1.00")
        estimate = [
            (o["cpu"] - o["worker_cpu"] + o["worker_cpu"] / args.jobs) / r["cpu"]
            for o, r in zip(mine, refs, strict=True)
        ]
        print(
            f"  wall ratio on {args.jobs} idle cores, from CPU: (serial + workers / {args.jobs}) / tutorial"
            f" {summary(estimate)}"
        )
        print("Peak memory (MB)")
        print(
            f"  ours, per extraction worker                {summary([o['worker_rss'] for o in mine])}   target <= 400"
        )
        print(f"  tutorial, largest process                  {summary([r['rss'] for r in refs])}")
        print_quality(label, assess(our_rows, truth, BINS, BRIGHT), assess(ref_rows, truth, BINS, BRIGHT))


if __name__ == "__main__":
    main()
