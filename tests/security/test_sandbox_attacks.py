"""More attacks from inside a local batch job, run by the real local executor (the Probe of
test_sandbox.py); each test fails while its attack works."""

from __future__ import annotations

import uuid
from typing import Any

from orchestration.batch.base import JobState
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
