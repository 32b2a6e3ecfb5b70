"""The second wall: htcondor2 reads text that came from a user only in a child with nothing to lose.

The portal itself never hands a user's text to htcondor2 (`orchestration.batch.submit` reads it).
Where htcondor2's own reading is wanted all the same (the conformance tests compare the portal's
reader with HTCondor's on the same files), `read_with_htcondor` runs it in a child process:

- an empty environment and an empty temporary working directory, which becomes the child's
  root (`chroot`) once htcondor2 is imported: `include : FILE` and `queue ... from FILE` find
  no file;
- new network and mount namespaces (as root, or through a user namespace otherwise): no
  network, not even the host's loopback;
- as root, the child drops to `nobody`; then RLIMIT_NPROC 0 (`include command :` cannot start
  a process), RLIMIT_FSIZE 0 (no file can be written), and limits on CPU time, address space
  and wall time.

`ChildResult.isolation` says which of these the machine allowed; a step the kernel refuses is
reported there, not silently skipped.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

CPU_SECONDS = 20
MEMORY_BYTES = 2 * 1024**3
WALL_SECONDS = 60.0

_CHILD = r"""
import ctypes, json, os, resource, sys

isolation = {"network": False, "files": False, "user": False, "processes": False}
libc = ctypes.CDLL(None, use_errno=True)
NEWNS, NEWUSER, NEWNET = 0x00020000, 0x10000000, 0x40000000
uid, gid = os.getuid(), os.getgid()
in_userns = False
if libc.unshare(NEWNET | NEWNS) == 0:
    isolation["network"] = True
elif libc.unshare(NEWUSER | NEWNET | NEWNS) == 0:
    in_userns = True
    for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)
    isolation["network"] = True
import htcondor2
try:
    os.chroot(".")
    os.chdir("/")
    isolation["files"] = True
except OSError:
    pass
if uid == 0 and not in_userns:
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
    isolation["user"] = True
limits = sys.argv[1:3]
resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
isolation["processes"] = True
resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
resource.setrlimit(resource.RLIMIT_CPU, (int(limits[0]), int(limits[0])))
resource.setrlimit(resource.RLIMIT_AS, (int(limits[1]), int(limits[1])))

def read(text, keys):
    try:
        sub = htcondor2.Submit(text)
        body = dict(sub.items())
        qargs = sub.getQArgs() or ""
        items = [dict(i) for i in (sub.itemdata() or [])] if qargs.strip() else []
        head = qargs.strip().split(" ", 1)[0]
        count = int(head) if head.isdigit() else 1
        jobs, proc = [], 0
        for item in items or [{}]:
            for _ in range(count):
                one = htcondor2.Submit({**body, **item, "Process": str(proc), "Cluster": "1"})
                jobs.append({k: (one.expand(k) if k in one else "") for k in keys})
                proc += 1
        return {"ok": True, "error": "", "body": body, "items": items, "jobs": jobs}
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "body": {}, "items": [], "jobs": []}

request = json.loads(sys.stdin.read())
answers = [read(text, request["keys"]) for text in request["texts"]]
sys.stdout.write(json.dumps({"isolation": isolation, "environment": sorted(os.environ), "answers": answers}))
"""


@dataclass
class ChildResult:
    """What htcondor2 made of one text, as plain data."""

    ok: bool
    error: str
    body: dict[str, str] = field(default_factory=dict)
    items: list[dict[str, str]] = field(default_factory=list)
    jobs: list[dict[str, str]] = field(default_factory=list)  # each job's expanded values of `keys`


@dataclass
class ChildRun:
    results: list[ChildResult]
    isolation: dict[str, bool]  # network, files, user, processes: which confinements took hold
    environment: list[str]  # names in the child's environment (htcondor2 sets CONDOR_CONFIG itself)


class ChildFailed(Exception):
    """The child did not answer: it was killed by a limit, or htcondor2 could not start."""


def read_with_htcondor(texts: list[str], keys: list[str], timeout: float = WALL_SECONDS) -> ChildRun:
    """htcondor2's reading of each text (and each job's expanded `keys`), done in a confined child."""
    request = json.dumps({"texts": texts, "keys": keys})
    with tempfile.TemporaryDirectory(prefix="condor-child-") as folder:
        try:
            done = subprocess.run(
                [sys.executable, "-I", "-c", _CHILD, str(CPU_SECONDS), str(MEMORY_BYTES)],
                input=request,
                capture_output=True,
                text=True,
                env={},
                cwd=folder,
                timeout=timeout,
                close_fds=True,
                start_new_session=True,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ChildFailed(f"htcondor2 did not answer within {timeout:.0f} s") from exc
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        raise ChildFailed(f"the htcondor2 child failed: {tail[0]}")
    answer = json.loads(done.stdout)
    results = [ChildResult(**a) for a in answer["answers"]]
    return ChildRun(results, dict(answer["isolation"]), list(answer["environment"]))
