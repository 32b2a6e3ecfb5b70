from __future__ import annotations

import csv
import os
import subprocess
import sys
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


ROOT = Path(__file__).resolve().parents[2]


def _manage(*args: str) -> subprocess.CompletedProcess[str]:
    # manage.py runs this command before Django is set up: a settings module that cannot load shows it
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "no.such.settings"}
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "extract_catalogue", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_manage_py_runs_it_without_django_and_writes_what_call_command_writes(
    small_image, tmp_path: Path
) -> None:
    path, _ = small_image
    done = _manage(str(path), "--output", str(tmp_path / "fast"), "--jobs", "2", "--detect-minarea", "5")
    assert done.returncode == 0, done.stderr
    assert "done (3/3)" in done.stdout and "fits:" in done.stdout
    call_command(
        "extract_catalogue", str(path), output=str(tmp_path / "django"), detect_minarea=5, stdout=StringIO()
    )
    fast = read_catalogue(tmp_path / "fast" / "1056215p.cat.fits")
    slow = read_catalogue(tmp_path / "django" / "1056215p.cat.fits")
    assert len(fast) == len(slow) > 0
    assert fast.provenance["parameters"] == slow.provenance["parameters"]
    assert sorted(p.name for p in (tmp_path / "fast").iterdir()) == sorted(
        p.name for p in (tmp_path / "django").iterdir()
    )


def test_manage_py_reports_bad_input_and_bad_limits_without_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "x.fits"
    bad.write_text("not fits")
    done = _manage(str(bad), "--output", str(tmp_path / "out"))
    assert done.returncode == 1
    assert "CommandError:" in done.stderr and "not a FITS file" in done.stderr
    assert "Traceback" not in done.stderr
    env_bad = {**os.environ, "CATALOGUE_MAX_CCD_PIXELS": "lots"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "extract_catalogue", str(bad), "--output", str(tmp_path)],
        env=env_bad,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1 and "CATALOGUE_MAX_CCD_PIXELS must be an integer" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_limits_are_the_settings_own(settings) -> None:
    from orchestration.catalogue.command import limits_from_environment

    assert limits_from_environment({}) == {
        "max_decompressed_bytes": settings.CATALOGUE_MAX_DECOMPRESSED_BYTES,
        "max_ccd_pixels": settings.CATALOGUE_MAX_CCD_PIXELS,
    }
    assert limits_from_environment({"CATALOGUE_MAX_CCD_PIXELS": "2048"})["max_ccd_pixels"] == 2048


def test_manage_py_keeps_astropy_offline_and_exits_with_every_file_written(
    small_image, tmp_path: Path
) -> None:
    # The fast path sets astropy's downloads off without the settings' import hook, and ends with
    # os._exit: the settings as they stand when it exits, and the files it said it wrote.
    path, _ = small_image
    probe = (
        "import os, runpy, sys\n"
        "real_exit = os._exit\n"
        "def report(status):\n"
        "    from astropy.utils import iers\n"
        "    from astropy.utils.data import conf\n"
        "    print('offline', conf.allow_internet, iers.conf.auto_download, 'wrapt' in sys.modules, flush=True)\n"
        "    real_exit(status)\n"
        "os._exit = report\n"
        f"sys.argv = ['manage.py', 'extract_catalogue', {str(path)!r}, '--output', {str(tmp_path)!r}]\n"
        f"runpy.run_path({str(ROOT / 'manage.py')!r}, run_name='__main__')\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "no.such.settings"}
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "offline False False False" in done.stdout
    written = [
        line.split(": ", 1)[1] for line in done.stdout.splitlines() if line.startswith("  ") and ": " in line
    ]
    assert len(written) == 5 and all(Path(p).stat().st_size > 0 for p in written)
