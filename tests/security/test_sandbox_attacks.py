"""More attacks from inside a local batch job, run by the real local executor (the Probe of
test_sandbox.py); each test fails while its attack works."""

from __future__ import annotations

import contextlib
import socket
import stat
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from orchestration.batch.base import JobState
from tests.portal.test_batch_outputs import local_batch  # noqa: F401 - a fixture (the portal with local storage)
from tests.security.test_sandbox import Probe, batch_here  # noqa: F401 - the fixture the probes need

# add_key(2) and keyctl(2) by number (x86_64), through ctypes: no keyutils needed in the job.
_KEYS = """#!/usr/bin/env python3
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
ADD_KEY, KEYCTL = 248, 250
USER_KEYRING = -4
token = sys.argv[1].encode()
if sys.argv[2] == "plant":
    key = libc.syscall(ADD_KEY, b"user", token, token, len(token), USER_KEYRING)
    print("planted" if key > 0 else f"refused errno {ctypes.get_errno()}")
else:
    print(open("/proc/keys").read())
    key = libc.syscall(KEYCTL, 10, USER_KEYRING, b"user", token, 0)  # KEYCTL_SEARCH
    if key > 0:
        buf = ctypes.create_string_buffer(256)
        libc.syscall(KEYCTL, 11, key, buf, 256)  # KEYCTL_READ
        print("read", buf.value.decode())
        libc.syscall(KEYCTL, 21, key)  # KEYCTL_INVALIDATE: leave the machine as it was
    print("probed")
"""


def test_a_job_leaves_no_key_in_the_kernel_keyring_for_another_users_job() -> None:
    """Every job has the same uid, and a uid's user keyring outlives its processes: a key one user's
    job adds would be there for the next job of anyone."""
    token = f"key-{uuid.uuid4().hex}"
    alice = Probe(_KEYS, args=f"{token} plant", owner="alice")
    assert alice.run().state == JobState.DONE, alice.err
    bob = Probe(_KEYS, args=f"{token} look", owner="bob")
    assert bob.run().state == JobState.DONE, bob.err
    assert "probed" in bob.out
    assert token not in bob.out
    assert alice.out.startswith("refused"), alice.out


def test_a_job_cannot_make_a_user_namespace_of_its_own() -> None:
    """Root in a user namespace of its own would open mounts, network set-up and much more of the
    kernel to the job."""
    probe = Probe(
        "#!/bin/sh\n"
        "unshare --user --map-root-user id -u 2>/dev/null\n"
        "unshare --user --map-root-user --net --mount true 2>/dev/null && echo unshared\n"
        "python3 -c 'import os; os.unshare(os.CLONE_NEWUSER); print(\"unshared\")' 2>/dev/null\n"
        "echo probed\n"
    )
    assert probe.run().state == JobState.DONE, probe.err
    assert probe.out.split() == ["probed"], probe.out


def test_a_job_cannot_fill_the_workers_disk_through_its_scratch_folder(settings: Any) -> None:
    """Each file is capped by the output limit, but not how many a job writes: its scratch folder
    (on the worker's disk) is measured while it runs, and the job stopped past its limit."""
    settings.BATCH_JOB_SCRATCH_MB = 8
    probe = Probe(
        "#!/bin/sh\n"
        "for n in $(seq 200); do head -c 1048576 /dev/zero > fill-$n; sleep 0.05; done\n"
        "echo filled\n"
    )
    result = probe.run()
    assert result.state == JobState.HELD, probe.out + probe.err
    assert "more than its scratch-space limit of 8 MB" in result.hold_reason
    assert "filled" not in probe.out


def test_a_job_that_ends_over_its_scratch_limit_gets_no_outputs_copied_back(settings: Any) -> None:
    settings.BATCH_JOB_SCRATCH_MB = 4
    probe = Probe(
        "#!/bin/sh\nhead -c 8388608 /dev/zero > big.dat\necho wrote\n",
        transfer="big.dat",
    )
    result = probe.run()
    assert result.state == JobState.HELD, probe.out + probe.err
    assert "scratch-space limit" in result.hold_reason
    assert not (probe.executor.retrieve(probe.cluster) / "big.dat").exists()


# What a job writes that the portal later reads, renders and stores: markup and terminal escapes in
# its output, and in its vcp outbox names with markup, newlines and backslashes, a link out, a hard
# link to its proxy-free scratch, a FIFO and a linked folder.
_HOSTILE_OUTPUTS = r"""#!/bin/bash
printf '<script>alert("out")</script>\033]0;title\007\033[2J done\n'
printf '<img src=x onerror=alert(1)>\n' >&2
echo "NUMBER MAG_AUTO" > $1.cat
cd "$PORTAL_VOS_OUTBOX"
printf x > $'new\nline.txt'
printf x > '<i onmouseover=alert(2)>.txt'
printf x > '..\..\bob\planted.txt'
mkdir $'dir\u202e' && printf x > $'dir\u202e'/in.txt
ln -s /etc/hostname link.txt
ln "$HOME/$1.cat" hard.txt
mkfifo fifo
mkdir sub && ln -s / sub/root && ln -s "$PORTAL_STORAGE_DIR/.." up
echo stored-all
"""


@pytest.mark.django_db
def test_what_a_job_writes_is_shown_escaped_and_stored_only_in_its_owners_space(
    alice_client: Any,
    local_batch: Path,  # noqa: F811
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    from orchestration.tasks import local_pulling
    from portal.models import Job
    from tests.portal.test_batch_outputs import submit

    settings.BATCH_SANDBOX = "required"
    bob = local_batch / "bob"
    bob.mkdir(parents=True)
    submit(alice_client, django_capture_on_commit_callbacks, script=_HOSTILE_OUTPUTS, items="1056215p\n")
    assert local_pulling.pull_local_jobs() == 1
    job = Job.objects.get()
    page = alice_client.get(f"/batch/jobs/{job.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "<script>alert" not in html and "<img src=x" not in html
    assert list(bob.iterdir()) == []  # nothing of alice's job in bob's space
    alice = local_batch / "alice"
    stored = {p.relative_to(alice).as_posix(): p for p in alice.rglob("*")}
    assert "link.txt" not in stored and "fifo" not in stored and "up" not in stored
    assert not any(name.startswith("sub/root") for name in stored)
    assert stored["hard.txt"].read_text() == "NUMBER MAG_AUTO\n"  # its own file, as a plain copy
    assert not any(p.is_symlink() for p in stored.values())
    assert Path("/etc/hostname").read_text() not in "".join(
        p.read_text(errors="replace") for p in stored.values() if p.is_file()
    )
    assert "bob" in job.output_note and "cannot contain '..'" in job.output_note  # said, not done
    # a name the storage pages could not link to (their 500) is refused with a sentence
    assert "new?line.txt: a file name cannot contain control" in job.output_note
    assert "dir?/: a file name cannot" in job.output_note and not any("\u202e" in n for n in stored)
    assert "new\nline.txt" not in stored and "<i onmouseover=alert(2)>.txt" in stored
    listing = alice_client.get("/storage/")
    assert listing.status_code == 200 and "<i onmouseover" not in listing.content.decode()
    response = alice_client.get(f"/storage/file/{quote('<i onmouseover=alert(2)>.txt')}")
    assert response.status_code == 200 and "<i onmouseover" not in response.content.decode()


def test_vcp_says_a_name_with_a_newline_cannot_go_to_the_users_space() -> None:
    probe = Probe("#!/bin/bash\nprintf x > $'two\\nlines'\nvcp $'two\\nlines' vos:alice/\necho status $?\n")
    assert probe.run().state == JobState.DONE, probe.err
    assert "status 1" in probe.out
    assert "'two\\nlines': a file name in your space cannot contain control characters" in probe.err


def test_the_scratch_limit_counts_what_is_hidden_deeper_than_a_path_can_name(settings: Any) -> None:
    settings.BATCH_JOB_SCRATCH_MB = 4
    name = "d" * 250
    probe = Probe(
        "#!/bin/bash\n"
        f"for n in $(seq 40); do mkdir {name} && cd {name} || exit 1; done\n"  # 10 000 bytes of path
        "head -c 8388608 /dev/zero > hidden.dat\n"
        "echo hid-it\n"
    )
    result = probe.run()
    assert "hid-it" in probe.out, probe.err
    assert result.state == JobState.HELD, result
    assert "scratch-space limit" in result.hold_reason


def test_folders_nested_thousands_deep_neither_break_the_worker_nor_stay_on_its_disk(settings: Any) -> None:
    """shutil.rmtree and os.walk recurse: 3 000 nested folders in scratch and in the vcp outbox made
    the worker's clean-up raise RecursionError, leaving the scratch folder on the disk."""
    probe = Probe(
        "#!/usr/bin/env python3\n"
        "import os\n"
        "open(os.path.join(os.environ['PORTAL_VOS_OUTBOX'], 'kept.txt'), 'w').write('kept')\n"
        "for top in ('.', os.environ['PORTAL_VOS_OUTBOX']):\n"
        "    os.chdir(top)\n"
        "    for n in range(3000):\n"
        "        os.mkdir('d')\n"
        "        os.chdir('d')\n"
        "    open('bottom.txt', 'w').write('x')\n"
        "print('nested')\n"
    )
    result = probe.run()
    assert result.state == JobState.DONE and "nested" in probe.out, probe.err
    assert [p.name for p in Path(settings.BATCH_SCRATCH_ROOT).iterdir()] == [".sandbox"]  # scratch gone
    outbox = probe.executor.retrieve(probe.cluster) / ".vospace-0"
    assert (outbox / "kept.txt").read_text() == "kept"
    assert max(len(p.relative_to(outbox).parts) for p in outbox.rglob("*")) <= 32


def _host_unix_sockets() -> list[str]:
    found = []
    for top in ("/run", "/var/run", "/tmp", "/var/lib"):
        for path in Path(top).glob("*/*"):
            with contextlib.suppress(OSError):
                if stat.S_ISSOCK(path.lstat().st_mode):
                    found.append(str(path))
    return found[:20]


@pytest.mark.parametrize("network", ["none", "egress"])
def test_a_job_finds_no_socket_secret_or_device_of_the_host(
    settings: Any, monkeypatch: Any, tmp_path: Path, network: str
) -> None:
    """Abstract unix sockets belong to a network namespace, socket files to the folders they are in;
    the worker's environment is not the job's; /dev holds only the harmless devices."""
    settings.BATCH_JOB_NETWORK = network
    secret = f"worker-secret-{uuid.uuid4().hex}"
    monkeypatch.setenv("PORTAL_PROBE_SECRET", secret)
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    name = f"portal-probe-{uuid.uuid4().hex}"
    abstract.bind("\0" + name)
    abstract.listen()
    filed = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    filed.bind(str(tmp_path / "host.sock"))
    filed.listen()
    sockets = [*_host_unix_sockets(), str(tmp_path / "host.sock")]
    script = (
        "#!/usr/bin/env python3\n"
        "import glob, os, socket, sys\n"
        "for address in sys.argv[1:]:\n"
        "    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
        "    try:\n"
        "        s.connect(address.replace('@', '\\0', 1))\n"
        "        print('connected', address)\n"
        "    except OSError:\n"
        "        pass\n"
        "for path in glob.glob('/proc/[0-9]*/environ') + ['/proc/self/environ']:\n"
        "    try:\n"
        "        print(open(path, 'rb').read().decode(errors='replace'))\n"
        "    except OSError:\n"
        "        pass\n"
        "print('dev', ' '.join(sorted(os.listdir('/dev'))))\n"
    )
    try:
        probe = Probe(script, args=" ".join([f"@{name}", *sockets]))
        assert probe.run().state == JobState.DONE, probe.err
    finally:
        abstract.close()
        filed.close()
    assert "connected" not in probe.out, probe.out
    assert secret not in probe.out and "PORTAL_PROBE_SECRET" not in probe.out
    devices = probe.out.split("dev ", 1)[1].split()
    harmless = {"core", "fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout"}
    assert set(devices) <= harmless | {"tty", "urandom", "zero"}, devices


def test_a_sparse_file_counts_by_its_size_since_it_would_be_copied_back_whole(settings: Any) -> None:
    """A 100 MB file with no blocks on disk passed the scratch limit, and copying it back wrote 100 MB
    into the portal's folders (a job can declare many such outputs, or vcp them)."""
    settings.BATCH_JOB_SCRATCH_MB = 4
    probe = Probe("#!/bin/sh\ntruncate -s 100M sparse.dat\necho made\n", transfer="sparse.dat")
    result = probe.run()
    assert "made" in probe.out, probe.err
    assert result.state == JobState.HELD and "scratch-space limit" in result.hold_reason, result
    assert not (probe.executor.retrieve(probe.cluster) / "sparse.dat").exists()


def test_system_v_shared_memory_counts_against_the_jobs_memory(settings: Any) -> None:
    """A SysV segment belongs to no process (the job's /dev/shm is not writable, and /tmp is sized):
    its pages must still count as the job's memory."""
    settings.BATCH_JOB_MEMORY_MB = 64
    probe = Probe(
        "#!/usr/bin/env python3\n"
        "import ctypes\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "libc.shmat.restype = ctypes.c_void_p\n"
        "size = 32 * 1024 * 1024\n"  # each segment alone fits its address-space limit
        "for n in range(8):\n"
        "    seg = libc.shmget(0, ctypes.c_size_t(size), 0o1600)\n"
        "    addr = libc.shmat(seg, None, 0)\n"
        "    ctypes.memset(ctypes.c_void_p(addr), 1, size)\n"
        "    libc.shmdt(ctypes.c_void_p(addr))\n"  # detached: no process maps it any more
        "    print('segment', n, flush=True)\n"
        "print('filled', flush=True)\n"
        "import time; time.sleep(2)\n"
        "print('kept')\n"
    )
    result = probe.run()
    assert "segment" in probe.out, probe.err
    assert result.state == JobState.HELD and "more than its limit of 64 MB" in result.hold_reason, (
        result,
        probe.out,
    )
    assert "kept" not in probe.out
