"""Attacks from inside a local batch job: each probe is a script run by the real local executor, built
from the settings as the portal builds it, and each test fails if the attack worked."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from orchestration.backends import local_executor, local_services
from orchestration.batch.base import JobState
from orchestration.batch.local_executor import LocalExecutor
from orchestration.batch.local_runner import JobResult
from orchestration.batch.sandbox import SandboxConfig, sandbox_problem
from orchestration.batch.submit import parse_submit
from tests.conftest import host_pids

SUBMIT = "executable = probe.sh\noutput = probe.out\nerror = probe.err\nlog = probe.log\narguments = {args}\n{extra}queue\n"


@pytest.fixture(autouse=True)
def batch_here(settings: Any, tmp_path: Path) -> None:
    assert sandbox_problem(SandboxConfig()) is None, "the job sandbox is part of the test set-up"
    settings.BATCH_ROOT = tmp_path / "batch"
    settings.BATCH_SCRATCH_ROOT = tmp_path / "scratch"
    settings.BATCH_SANDBOX = "required"
    settings.BATCH_JOB_NETWORK = "none"


class Probe:
    """One submitted probe job and what it printed."""

    def __init__(self, script: str, args: str = "", owner: str = "alice", transfer: str = "") -> None:
        self.executor: LocalExecutor = local_executor()
        services = local_services(SimpleNamespace(username=owner))
        extra = f"transfer_output_files = {transfer}\n" if transfer else ""
        parsed = parse_submit(SUBMIT.format(args=args, extra=extra))
        self.cluster = self.executor.submit(
            parsed, {"probe.sh": script.encode()}, f"probe-{uuid.uuid4().hex}", services=services
        ).cluster

    def run(self) -> JobResult:
        result = self.executor.run(self.cluster, 0)
        assert result is not None
        return result

    @property
    def out(self) -> str:
        path = self.executor.retrieve(self.cluster) / "probe.out"
        return path.read_text() if path.exists() else ""

    @property
    def err(self) -> str:
        return (self.executor.retrieve(self.cluster) / "probe.err").read_text()


def wait_for(check: Any, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_it_runs_a_job_as_an_unprivileged_uid_without_capabilities(settings: Any) -> None:
    probe = Probe(
        '#!/bin/sh\nid -u\nid -g\ngrep -E "^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs):" /proc/self/status\n'
    )
    assert probe.run().state == JobState.DONE, probe.err
    lines = probe.out.split()
    uids = range(settings.BATCH_JOB_UID_BASE, settings.BATCH_JOB_UID_BASE + settings.BATCH_JOB_UID_COUNT)
    assert int(lines[0]) in uids and lines[1] == lines[0]  # not root, not the portal's user, its own uid
    caps = dict(zip(lines[2::2], lines[3::2], strict=True))
    assert caps["CapEff:"] == caps["CapPrm:"] == caps["CapBnd:"] == caps["CapAmb:"] == "0" * 16
    assert caps["NoNewPrivs:"] == "1"


def test_a_job_sees_only_its_own_processes() -> None:
    marker = f"300.{uuid.uuid4().int % 10**6}"
    host = subprocess.Popen(["sleep", marker])  # a process of the machine's, outside
    try:
        probe = Probe(
            "#!/bin/sh\n"
            "ls /proc | grep -c '^[0-9]'\n"
            # the pattern does not match itself, so grep's own command line (also in /proc) is not found
            f"cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' ' | grep -q '{marker.replace('.', '[.]')}' && echo saw-host-process\n"
            f"kill -0 {host.pid} 2>/dev/null && echo reached-host-pid\n"
            "echo probed\n"
        )
        assert probe.run().state == JobState.DONE, probe.err
    finally:
        host.kill()
        host.wait()
    assert "probed" in probe.out
    count = int(probe.out.split()[0])
    assert count <= 6  # its init, its shell, ls, grep: not the machine's hundreds
    assert "saw-host-process" not in probe.out and "reached-host-pid" not in probe.out


def test_a_job_cannot_read_the_portals_database_or_another_users_storage(settings: Any) -> None:
    token = f"secret-{uuid.uuid4().hex}"
    database = Path(settings.VAR_DIR) / f"probe-{uuid.uuid4().hex}.sqlite3"  # as the portal's database
    database.parent.mkdir(parents=True, exist_ok=True)
    database.write_text(token)
    bob = Path(settings.STORAGE_ROOT) / "bob"
    bob.mkdir(parents=True, exist_ok=True)
    (bob / "private.txt").write_text(token)
    real_db = Path(str(settings.DATABASES["default"]["NAME"]))
    try:
        probe = Probe(
            "#!/bin/sh\n"
            f"cat {database} {bob}/private.txt 2>/dev/null\n"
            f"head -c 16 {real_db} 2>/dev/null\n"
            f"ls {settings.VAR_DIR} {settings.BASE_DIR} 2>/dev/null\n"
            "ls $PORTAL_STORAGE_DIR/.. 2>/dev/null\n"
            f"cat /proc/1/root{database} 2>/dev/null\n"
            "echo probed\n"
        )
        assert probe.run().state == JobState.DONE, probe.err
    finally:
        database.unlink()
    assert "probed" in probe.out
    assert token not in probe.out and "SQLite format" not in probe.out
    assert "bob" not in probe.out and "manage.py" not in probe.out


def test_a_job_cannot_reach_another_running_jobs_scratch_or_host_processes_roots(settings: Any) -> None:
    token = f"scratch-of-the-first-job-{uuid.uuid4().hex}"
    first = Probe(f"#!/bin/sh\necho {token} > mine.txt\npwd\nsleep 30\n")
    thread = threading.Thread(target=first.run)
    thread.start()
    try:
        wait_for(lambda: first.out.strip(), "the first job to start")
        scratch = first.out.split()[0]
        assert Path(scratch, "mine.txt").read_text().strip() == token  # seen from the host, it is there
        host_file = Path(settings.VAR_DIR) / f"host-{uuid.uuid4().hex}.txt"
        host_file.write_text(token)
        second = Probe(
            "#!/bin/sh\n"
            f"cat {scratch}/mine.txt 2>/dev/null\n"
            "cat /proc/*/cwd/mine.txt /proc/*/root/$1/mine.txt 2>/dev/null\n"
            f"for p in 1 {threading.get_native_id()} $(ls /proc | grep '^[0-9]'); do "
            f"cat /proc/$p/root{host_file} /proc/$p/root{scratch}/mine.txt 2>/dev/null; done\n"
            "echo probed\n",
            args=scratch,
            owner="bob",
        )
        try:
            assert second.run().state == JobState.DONE, second.err
        finally:
            host_file.unlink()
    finally:
        first.executor.remove(first.cluster)
        thread.join(10)
    assert "probed" in second.out and token not in second.out


def _listener(address: str) -> tuple[socket.socket, list[str]]:
    server = socket.socket()
    server.bind((address, 0))
    server.listen()
    seen: list[str] = []

    def accept() -> None:
        while True:
            try:
                conn, peer = server.accept()
            except OSError:
                return
            seen.append(peer[0])
            conn.close()

    threading.Thread(target=accept, daemon=True).start()
    return server, seen


def _host_address() -> str:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # no packet is sent: this asks which address routes out
        return str(probe.getsockname()[0])
    except OSError:
        return "127.0.0.1"
    finally:
        probe.close()


@pytest.mark.parametrize("network", ["none", "egress"])
def test_a_job_reaches_no_service_of_the_host(settings: Any, network: str) -> None:
    settings.BATCH_JOB_NETWORK = network
    loopback, seen_lo = _listener("127.0.0.1")
    anywhere, seen_any = _listener("0.0.0.0")
    targets = [
        ("127.0.0.1", 5432),  # PostgreSQL
        ("127.0.0.1", 6379),  # Redis
        ("127.0.0.1", loopback.getsockname()[1]),
        ("127.0.0.1", anywhere.getsockname()[1]),
        (_host_address(), anywhere.getsockname()[1]),
    ]
    lines = "".join(
        f"(exec 3<>/dev/tcp/{host}/{port}) 2>/dev/null && echo connected-{host}:{port} || echo refused\n"
        for host, port in targets
    )
    try:
        probe = Probe(f"#!/bin/bash\n{lines}")
        assert probe.run().state == JobState.DONE, probe.err
    finally:
        loopback.close()
        anywhere.close()
    assert probe.out.split() == ["refused"] * len(targets)
    assert seen_lo == [] and seen_any == []


def _uid_processes(uid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_an_egress_job_has_a_network_it_cannot_reconfigure_and_that_ends_with_it(settings: Any) -> None:
    settings.BATCH_JOB_NETWORK = "egress"
    probe = Probe(
        "#!/bin/sh\n"
        "ip route | grep -q '^default' && echo has-a-way-out\n"
        "ip link set lo down 2>/dev/null && echo reconfigured\n"
        "ip route add 127.0.0.0/8 dev eth0 2>/dev/null && echo rerouted-loopback\n"
        "echo probed\n"
    )
    assert probe.run().state == JobState.DONE, probe.err
    assert "has-a-way-out" in probe.out and "probed" in probe.out
    assert "reconfigured" not in probe.out and "rerouted-loopback" not in probe.out
    assert _uid_processes(settings.BATCH_JOB_NETWORK_UID) == []  # pasta and its namespace are gone


def test_a_fork_bomb_is_stopped_by_the_process_limit(settings: Any) -> None:
    settings.BATCH_JOB_MAX_PROCESSES = 64
    bomb = (
        "#!/usr/bin/env python3\n"
        "import os, time\n"
        "children = 0\n"
        "try:\n"
        "    while children < 1000:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(30)\n"
        "            os._exit(0)\n"
        "        children += 1\n"
        "    print('forked', children)\n"
        "except OSError:\n"
        "    print('stopped at', children)\n"
    )
    probe = Probe(bomb)
    probe.run()
    words = probe.out.split()
    assert words[:2] == ["stopped", "at"], probe.out + probe.err
    assert int(words[2]) < 64


def test_memory_is_limited_across_double_forked_children(settings: Any) -> None:
    settings.BATCH_JOB_MEMORY_MB = 64  # each child alone stays under it, and under its address-space cap
    grab = "import time\\nb = bytearray(50 * 1024 * 1024)\\nfor i in range(0, len(b), 4096): b[i] = 1\\n"
    grab += 'print("allocated", flush=True)\\ntime.sleep(20)'  # no ' inside the printf '...'
    probe = Probe(
        "#!/bin/bash\n"
        f"for n in 1 2; do ( python3 -c \"$(printf '{grab}')\" & ); done\n"  # nobody's children
        "sleep 20\n"
        "echo survived\n"
    )
    result = probe.run()
    assert result.state == JobState.HELD, probe.out + probe.err
    assert "more than its limit of 64 MB" in result.hold_reason
    assert probe.out.count("allocated") < 2 and "survived" not in probe.out


def test_nothing_of_a_job_survives_it() -> None:
    markers = [f"{n}.{uuid.uuid4().int % 10**6}" for n in (301, 302, 303)]
    probe = Probe(
        "#!/bin/sh\n"
        f"setsid sleep {markers[0]} > /dev/null 2>&1 < /dev/null &\n"  # a new session
        f"( sleep {markers[1]} > /dev/null 2>&1 & )\n"  # double-forked
        f"nohup sleep {markers[2]} > /dev/null 2>&1 &\n"
        "sleep 0.2\n"
        "echo left-them\n"
    )
    assert probe.run().state == JobState.DONE, probe.err
    assert "left-them" in probe.out
    for marker in markers:
        assert host_pids(marker) == [], f"sleep {marker} outlived its job"


def test_hold_stops_the_whole_sandbox_at_once() -> None:
    marker = f"304.{uuid.uuid4().int % 10**6}"
    probe = Probe(f"#!/bin/sh\ntrap '' TERM\nsetsid sleep {marker} &\necho started\nwait\n")
    results: list[JobResult] = []
    thread = threading.Thread(target=lambda: results.append(probe.run()))
    thread.start()
    wait_for(lambda: host_pids(marker), "the job's child to start")
    probe.executor.hold(probe.cluster, reason="held by the test")
    thread.join(10)
    assert not thread.is_alive()
    assert results[0].state == JobState.HELD
    assert host_pids(marker) == []


@pytest.mark.django_db
def test_the_batch_form_says_which_mode_local_jobs_run_in(client: Any, settings: Any) -> None:
    from tests.conftest import make_user

    settings.BATCH_EXECUTORS = ["local", "htcondor"]
    client.force_login(make_user("alice", ["alice-lensing"]))
    page = client.get("/batch/new/").content.decode()
    assert 'data-testid="sandbox-mode"' in page and "sandboxed" in page and "uid of its own" in page
    settings.BATCH_SANDBOX = "trusted"
    page = client.get("/batch/upload/").content.decode()
    assert "trusted mode" in page and "without a sandbox" in page
