"""A stand-in for a remote htcondor2.Schedd (and the collector's slot ads), behaving as a real one does.

Submit descriptions are expanded by the real htcondor2.Submit; results are real
SubmitResult and classad2.ClassAd objects; event logs are written in HTCondor's
classic format and read back by the real htcondor2.JobEventLog. Only the daemon
is missing. Each behaviour below is a fact from ../shared/INTEGRATION.md ("Behaviour
of a real schedd") or issue 13, and tests/batch/test_fake_schedd.py checks it:

- `executable` is resolved as the submitting process resolves it: a relative name
  against the submitter's working directory (not initialdir); input files against
  initialdir.
- `spool=True` jobs start held (code 16) until `spool()` has sent their files; a
  spool that fails (a file it cannot read) removes the cluster ("Staging of job files
  failed") and raises HTCondorException; a spool cut off half way (the client killed)
  leaves the cluster held until the schedd notices, then removes it the same way.
- `act()` takes the reason as the bindings pass it: a plain string is dropped (HoldReason
  empty, RemoveReason undefined), a tuple `(text, code)` arrives.
- a job that exits without a declared output file is held (code 12, "Transfer output
  files failure"), not completed.
- spooled completed jobs stay in the queue (status 4) until their output is retrieved;
  only then do they reach the history.

Not in those facts, so chosen on the cautious side and said here: which files come back for a
job held with code 12 (none: its user log stays in the spool, and retrieve() takes only
completed jobs); the RemoveReason of a cluster whose spool was cut off (the same "Staging of
job files failed"); all jobs of a cluster leave the spooling hold together, at the end of spool().

DAGMan (`run_dagman`), from HTCondor's documentation and DAGMan's sources, not run here: the
DAGMan job (scheduler universe, `transfer_executable = false`: the schedd's own condor_dagman)
runs in its spool directory and reads the DAG file and the node submit files there, relative
to it; it submits each node's file there (so a node job's Iwd is that directory) with the
node's VARS appended, `$(RETRY)` in a VARS value replaced by the attempt's retry number, and
DAGManJobId and DAGNodeName set; it retries a failed node RETRY times, never runs the
descendants of a node that failed for good, runs the FINAL node last, and exits 0 when every
node succeeded, 1 otherwise. Node jobs are not spooled: as any such job, each one's output and
user log are written into its Iwd and it leaves the queue for the history when it completes.
Chosen and unverified: retrieving a completed scheduler-universe job without
transfer_output_files brings back every file of its spool directory that it was not sent.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import classad2
import htcondor2
from htcondor2 import JobAction

_DEFAULT = object()
STAGING_FAILED = "Staging of job files failed"
SPOOL_FAILED = "DCSchedd::spoolJobFiles:7002:File transfer failed"
HOLD_SPOOLING = 16
HOLD_TRANSFER_OUTPUT = 12
HOLD_USER = 1
SCHEDD_SINFUL = "<127.0.0.1:9618?addrs=127.0.0.1-9618&alias=submit.example.org&noUDP&sock=schedd_1_2>"
T0 = 1700000000  # the fake pool's clock: jobs start here


class Killed(BaseException):
    """The submitting worker died here (kill -9): nothing after this point of its code runs."""


def _mb(value: str) -> int:
    """A request_memory value in MB, as condor_submit reads it ("2048", "2048MB", "2GB")."""
    text = value.strip().upper().removesuffix("B")
    scale = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}.get(text[-1:], 0)
    return int(float(text[:-1]) * scale) if scale else int(float(text))


def _slot(name: str, memory: int = 7680, cpus: int = 2, **extra: Any) -> classad2.ClassAd:
    return classad2.ClassAd(
        {
            "Name": name,
            "Machine": name.split("@")[-1],
            "Arch": "X86_64",
            "OpSys": "LINUX",
            "Memory": memory,
            "Cpus": cpus,
            "Disk": 30_000_000,
            "HasFileTransfer": True,
            **extra,
        }
    )


def plain_pool() -> list[classad2.ClassAd]:
    """The slots of a plain pool: no VMType, no group_name."""
    return [_slot("slot1@worker-7"), _slot("slot2@worker-7")]


class FakeCollector:
    """The collector's side: startd (slot) ads, as `htcondor2.Collector.query(AdType.Startd)` returns them."""

    def __init__(self, slots: list[classad2.ClassAd]) -> None:
        self.slots = slots

    def query(
        self,
        ad_type: htcondor2.AdType = htcondor2.AdType.Any,
        constraint: str | classad2.ExprTree | None = None,
        projection: list[str] = [],  # noqa: B006 - the real signature
        statistics: str | None = None,
    ) -> list[classad2.ClassAd]:
        if ad_type != htcondor2.AdType.Startd:
            return []
        expr = classad2.ExprTree(str(constraint)) if constraint is not None else None
        ads = [ad for ad in self.slots if expr is None or expr.eval(ad) is True]
        if not projection:
            return [classad2.ClassAd(dict(ad)) for ad in ads]
        return [classad2.ClassAd({k: ad[k] for k in projection if k in ad}) for ad in ads]


class FakeSchedd:
    def __init__(self, slots: list[classad2.ClassAd] | None = None) -> None:
        self.jobs: dict[tuple[int, int], classad2.ClassAd] = {}
        self.history_ads: list[classad2.ClassAd] = []
        self.spool_dir = Path(tempfile.mkdtemp(prefix="fake-spool-"))
        self.next_cluster = 100
        self.down = False
        self.submissions = 0
        self.collector = FakeCollector(plain_pool() if slots is None else slots)
        # Kill points for tests: the worker dies right after submit() returned, or inside spool().
        self.kill_after_submit = False
        self.kill_during_spool = False
        self.notices_lost_spools = True  # False: the schedd has not noticed a cut-off spool yet
        self._cut_off: set[int] = set()
        self._dags: dict[int, dict[str, Any]] = {}  # DAGMan's own state per DAGMan job (run_dagman)

    def _check(self) -> None:
        if self.down:
            raise htcondor2.HTCondorException("Failed to connect to schedd (CEDAR:6001)")
        if self.notices_lost_spools:
            for cluster in sorted(self._cut_off):
                self._remove_cluster(cluster, STAGING_FAILED)
            self._cut_off.clear()

    # ---------------------------------------------------------------- submitting

    def submit(
        self,
        description: htcondor2.Submit,
        count: int = 0,
        spool: bool = False,
        itemdata: Iterator[str] | Iterator[dict] | None | Any = _DEFAULT,
        queue: str | None = None,
    ) -> htcondor2.SubmitResult:
        self._check()
        if not isinstance(description, htcondor2.Submit):
            raise TypeError("description must be an htcondor2.Submit object")
        self.submissions += 1
        body = dict(description.items())
        items = [{}] * (count or 1) if itemdata is _DEFAULT or itemdata is None else list(itemdata)
        cluster, self.next_cluster = self.next_cluster, self.next_cluster + 1
        for proc, item in enumerate(items):
            sub = htcondor2.Submit({**body, **item, "Process": str(proc), "Cluster": str(cluster)})
            ad = classad2.ClassAd()
            ad["ClusterId"], ad["ProcId"] = cluster, proc
            ad["QDate"] = T0
            ad["JobStatus"] = 5 if spool else 1
            # A DAGMan job (Submit.from_dag) is a scheduler-universe job: it runs on the schedd itself.
            # The fake never runs it; a test submits the node jobs as DAGMan would, and ends it.
            ad["JobUniverse"] = 7 if str(body.get("universe", "")).lower() == "scheduler" else 5
            if spool:
                ad["HoldReasonCode"], ad["HoldReason"] = HOLD_SPOOLING, "Spooling input data files"
                ad["LeaveJobInQueue"] = True
            # The submitting process resolves the executable against ITS working directory.
            ad["Cmd"] = os.path.join(os.getcwd(), sub.expand("executable"))
            ad["Args"] = sub.expand("arguments") if "arguments" in sub else ""
            ad["Iwd"] = sub.expand("initialdir") if "initialdir" in sub else os.getcwd()
            for key, attr in (("output", "Out"), ("error", "Err"), ("log", "UserLog")):
                if key in sub:
                    ad[attr] = sub.expand(key)
            ad["TransferInput"] = sub.expand("transfer_input_files") if "transfer_input_files" in sub else ""
            if "transfer_output_files" in sub:
                ad["TransferOutput"] = sub.expand("transfer_output_files")
            if "x509userproxy" in sub:
                ad["x509userproxy"] = sub.expand("x509userproxy")
            if str(body.get("transfer_executable", "")).lower() == "false":
                ad["TransferExecutable"] = False
            if "environment" in sub:
                ad["Environment"] = sub.expand("environment").strip('"')
            ad["RequestMemory"] = _mb(sub.expand("request_memory")) if "request_memory" in sub else 128
            ad["RequestCpus"] = int(sub.expand("request_cpus")) if "request_cpus" in sub else 1
            for key in body:
                if key.startswith("MY."):
                    ad[key[3:]] = classad2.ExprTree(sub.expand(key))
            # condor_submit's own clauses, after the user's (as `condor_q -l` shows them)
            own = '(TARGET.Arch == "X86_64") && (TARGET.Memory >= RequestMemory) && (TARGET.HasFileTransfer)'
            user = sub.expand("Requirements") if "Requirements" in body else ""
            ad["Requirements"] = classad2.ExprTree(f"({user}) && {own}" if user else own)
            self.jobs[(cluster, proc)] = ad
            self._log(
                ad, f"000 ({cluster:03d}.{proc:03d}.000) {{when}} Job submitted from host: {SCHEDD_SINFUL}\n"
            )
        if self.kill_after_submit:
            raise Killed("the worker died after submit() returned")
        return htcondor2.SubmitResult(
            cluster, 0, len(items), classad2.ClassAd(), classad2.ClassAd() if spool else None
        )

    def spool(self, result: htcondor2.SubmitResult) -> None:
        """Upload each job's executable and input files, as the real spool() does, then release them."""
        self._check()
        cluster = result.cluster()
        ads = [ad for (c, _), ad in sorted(self.jobs.items()) if c == cluster]
        for n, ad in enumerate(ads):
            if self.kill_during_spool and n == len(ads) // 2:
                self._cut_off.add(cluster)  # the schedd removes it once it notices the client is gone
                raise Killed("the worker died while spooling")
            spool = self._sandbox(ad)
            spool.mkdir(exist_ok=True)
            names = [n.strip() for n in str(ad["TransferInput"]).split(",") if n.strip()]
            try:
                if ad.get("TransferExecutable", True):  # false: the schedd's own program, not sent
                    shutil.copy(ad["Cmd"], spool / Path(ad["Cmd"]).name)
                for name in names:
                    shutil.copy(Path(ad["Iwd"]) / name, spool / Path(name).name)  # relative: initialdir
                if "x509userproxy" in ad:  # HTCondor sends the proxy with the job
                    shutil.copy(ad["x509userproxy"], spool / Path(ad["x509userproxy"]).name)
            except OSError as exc:
                self._remove_cluster(cluster, STAGING_FAILED)
                raise htcondor2.HTCondorException(SPOOL_FAILED) from exc
        for ad in ads:
            ad["JobStatus"] = 1
            del ad["HoldReasonCode"]
            del ad["HoldReason"]

    def _sandbox(self, ad: classad2.ClassAd) -> Path:
        return self.spool_dir / f"{ad['ClusterId']}.{ad['ProcId']}"

    def _where(self, ad: classad2.ClassAd) -> Path:
        """Where the job's output and user log are written: its spool directory, or its Iwd if not spooled."""
        return self._sandbox(ad) if ad.get("LeaveJobInQueue") else Path(ad["Iwd"])

    def _remove_cluster(self, cluster: int, reason: str) -> None:
        for key in [k for k in self.jobs if k[0] == cluster]:
            self._removed(key, reason)

    def _removed(self, key: tuple[int, int], reason: str | None) -> None:
        ad = self.jobs.pop(key)
        ad["JobStatus"] = 3
        if reason is not None:
            ad["RemoveReason"] = reason
        ad["EnteredCurrentStatus"] = T0
        self._log(ad, f"009 ({key[0]:03d}.{key[1]:03d}.000) {{when}} Job was aborted.\n\t{reason or ''}\n")
        self.history_ads.append(ad)

    # ---------------------------------------------------------------- reading

    def _match(self, constraint: str | classad2.ExprTree | None, ads: list[classad2.ClassAd]) -> list:
        expr = classad2.ExprTree(str(constraint)) if constraint is not None else None
        return [ad for ad in ads if expr is None or expr.eval(ad) is True]

    def _project(self, ads: list[classad2.ClassAd], projection: list[str]) -> list[classad2.ClassAd]:
        if not projection:
            return [classad2.ClassAd(dict(ad)) for ad in ads]
        return [classad2.ClassAd({k: ad[k] for k in projection if k in ad}) for ad in ads]

    def query(
        self,
        constraint: str | classad2.ExprTree = "True",
        projection: list[str] = [],  # noqa: B006 - the real signature
        callback: Any = None,
        limit: int = -1,
        opts: Any = None,
    ) -> list[classad2.ClassAd]:
        self._check()
        ads = self._project(self._match(constraint, list(self.jobs.values())), projection)
        return ads if limit < 0 else ads[:limit]

    def history(
        self,
        constraint: str | classad2.ExprTree | None = None,
        projection: list[str] = [],  # noqa: B006 - the real signature
        match: int = -1,
        since: Any = None,
    ) -> list[classad2.ClassAd]:
        self._check()
        ads = self._project(self._match(constraint, self.history_ads), projection)
        return ads if match < 0 else ads[:match]

    # ---------------------------------------------------------------- acting

    def _select(self, job_spec: list[str] | str | classad2.ExprTree | int) -> list[tuple[int, int]]:
        """The jobs a job_spec names, read as the bindings' job_spec_hack reads it."""
        if isinstance(job_spec, int):
            job_spec = str(job_spec)
        specs = job_spec if isinstance(job_spec, list) else [job_spec]
        if all(isinstance(x, str) and re.fullmatch(r"\d+(\.\d+)?", x) for x in specs):
            out = []
            for spec in specs:
                cluster, _, proc = str(spec).partition(".")
                out += [k for k in self.jobs if k[0] == int(cluster) and (not proc or k[1] == int(proc))]
            return out
        if isinstance(job_spec, list):
            raise ValueError(
                "All elements of the job_spec list must be strings of the form clusterID[.procID]"
            )
        expr = classad2.ExprTree(str(job_spec))
        return [k for k, ad in self.jobs.items() if expr.eval(ad) is True]

    def act(
        self,
        action: JobAction,
        job_spec: list[str] | str | classad2.ExprTree | int,
        reason: str | tuple[str, int] | None = None,
    ) -> classad2.ClassAd:
        self._check()
        # What the bindings (25.14.1) send: None -> their default text, a tuple -> its text and
        # code, a plain string -> nothing at all.
        text: str | None = None
        code = 0
        if reason is None:
            text = "Python-initiated action"
        elif isinstance(reason, tuple):
            text, code = reason[0], int(reason[1])
        keys = self._select(job_spec)
        for key in keys:
            ad = self.jobs[key]
            c, p = key
            if action == JobAction.Hold and ad["JobStatus"] in (1, 2):
                ad["JobStatus"], ad["HoldReason"], ad["HoldReasonCode"] = 5, text or "", HOLD_USER
                ad["HoldReasonSubCode"] = code
                self._log(
                    ad,
                    f"012 ({c:03d}.{p:03d}.000) {{when}} Job was held.\n\t{text or ''}\n"
                    f"\tCode {HOLD_USER} Subcode {code}\n",
                )
            elif action == JobAction.Release and ad["JobStatus"] == 5:
                ad["JobStatus"] = 1
                for attr in ("HoldReason", "HoldReasonCode", "HoldReasonSubCode"):
                    ad.pop(attr, None)
                self._log(ad, f"013 ({c:03d}.{p:03d}.000) {{when}} Job was released.\n\t{text or ''}\n")
            elif action == JobAction.Remove:
                self._removed(key, text)
        return classad2.ClassAd({"TotalSuccess": len(keys)})

    def retrieve(self, job_spec: list[str] | str | classad2.ExprTree | int) -> None:
        """Copy completed jobs' output from the spool into their Iwd; they leave the queue for the history."""
        self._check()
        for key in self._select(job_spec):
            ad = self.jobs[key]
            if ad["JobStatus"] != 4:
                continue
            spool = self._sandbox(ad)
            names = [ad[attr] for attr in ("Out", "Err", "UserLog") if attr in ad]
            names += [n.strip() for n in str(ad.get("TransferOutput", "")).split(",") if n.strip()]
            if ad["JobUniverse"] == 7 and "TransferOutput" not in ad:  # ran in the spool: all it wrote
                sent = {Path(n.strip()).name for n in str(ad["TransferInput"]).split(",") if n.strip()}
                names += sorted(p.name for p in spool.iterdir() if p.is_file() and p.name not in sent)
            for name in dict.fromkeys(names):
                if (spool / name).exists():
                    shutil.copy(spool / name, Path(ad["Iwd"]) / name)
            self.history_ads.append(self.jobs.pop(key))

    # ---------------------------------------------------------------- the pool's side (tests move jobs)

    def _log(self, ad: classad2.ClassAd, event: str, when: float = T0) -> None:
        """Append a classic-format event to the job's user log, kept in its spool directory."""
        if "UserLog" not in ad:
            return
        spool = self._where(ad)
        spool.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))
        with open(spool / ad["UserLog"], "a") as f:
            f.write(event.format(when=stamp) + "...\n")

    def start(self, cluster: int, proc: int) -> None:
        """The negotiator matched the job: it runs on worker-7 (5 s of input transfer before it executes)."""
        ad = self.jobs[(cluster, proc)]
        c, p = cluster, proc
        ad["JobStatus"], ad["RemoteHost"] = 2, "slot1@worker-7"
        ad["JobCurrentStartDate"] = T0
        ad["JobCurrentStartExecutingDate"] = T0 + 5
        sinful = "<10.0.0.7:9618?addrs=10.0.0.7-9618&alias=worker-7&noUDP&sock=startd_7_1>"
        self._log(
            ad,
            f"040 ({c:03d}.{p:03d}.000) {{when}} Started transferring input files\n"
            "\tTransferring to host: <10.0.0.7:9618?addrs=10.0.0.7-9618&noUDP&sock=slot1_7>\n",
            T0,
        )
        self._log(ad, f"040 ({c:03d}.{p:03d}.000) {{when}} Finished transferring input files\n", T0 + 5)
        self._log(ad, f"001 ({c:03d}.{p:03d}.000) {{when}} Job executing on host: {sinful}\n", T0 + 5)
        self._log(
            ad,
            f"006 ({c:03d}.{p:03d}.000) {{when}} Image size of job updated: 2500\n"
            "\t3  -  MemoryUsage of job (MB)\n\t2500  -  ResidentSetSize of job (KB)\n",
            T0 + 6,
        )

    def run(
        self,
        cluster: int,
        proc: int,
        exit_code: int = 0,
        signal: int | None = None,
        out: str = "",
        err: str = "",
        files: dict[str, str] | None = None,
        seconds: int = 5,
    ) -> None:
        """The job runs `seconds` and exits; what it wrote in its scratch directory goes back to the spool."""
        ad = self.jobs[(cluster, proc)]
        if ad["JobStatus"] != 2:
            self.start(cluster, proc)
        c, p = cluster, proc
        end = T0 + 5 + seconds
        spool = self._where(ad)
        written = {ad["Out"]: out, ad["Err"]: err} if "Err" in ad else {ad["Out"]: out}
        written.update(files or {})
        declared = [n.strip() for n in str(ad.get("TransferOutput", "")).split(",") if n.strip()]
        missing = [n for n in declared if n not in written]
        ad["LastRemoteHost"] = ad["RemoteHost"]
        if missing:  # the starter cannot send a declared output: the job is held, not completed
            reason = (
                "Transfer output files failure at execution point slot1@worker-7 while sending files to "
                f"access point submit.example.org: reading from file /var/lib/condor/execute/dir_7/"
                f"{missing[0]}: (errno 2) No such file or directory"
            )
            ad["JobStatus"], ad["HoldReasonCode"], ad["HoldReasonSubCode"] = 5, HOLD_TRANSFER_OUTPUT, 2
            ad["HoldReason"] = reason
            del ad["RemoteHost"]
            self._log(
                ad,
                f"012 ({c:03d}.{p:03d}.000) {{when}} Job was held.\n\t{reason}\n"
                f"\tCode {HOLD_TRANSFER_OUTPUT} Subcode 2\n",
                end,
            )
            return
        for name, text in written.items():
            (spool / name).write_text(text)
        self._log(ad, f"040 ({c:03d}.{p:03d}.000) {{when}} Started transferring output files\n", end)
        self._log(ad, f"040 ({c:03d}.{p:03d}.000) {{when}} Finished transferring output files\n", end)
        if signal is not None:
            ad["ExitBySignal"], ad["ExitSignal"] = True, signal
            status = f"\t(0) Abnormal termination (signal {signal})\n\t(0) No core file\n"
        else:
            ad["ExitBySignal"], ad["ExitCode"] = False, exit_code
            status = f"\t(1) Normal termination (return value {exit_code})\n"
        usage = "".join(
            f"\t\tUsr 0 00:00:00, Sys 0 00:00:00  -  {what}\n"
            for what in ("Run Remote Usage", "Run Local Usage", "Total Remote Usage", "Total Local Usage")
        )
        self._log(ad, f"005 ({c:03d}.{p:03d}.000) {{when}} Job terminated.\n{status}{usage}", end)
        ad["JobStatus"], ad["CompletionDate"] = 4, end
        del ad["RemoteHost"]
        if not ad.get("LeaveJobInQueue"):  # not spooled: nothing to wait for, it leaves the queue
            self.history_ads.append(self.jobs.pop((cluster, proc)))

    # ---------------------------------------------------------------- DAGMan (the schedd runs it)

    def run_dagman(
        self,
        cluster: int,
        exits: dict[str, int | list[int]] | None = None,
        only: set[str] | None = None,
        finish: bool = True,
    ) -> list[int]:
        """DAGMan's run of the DAGMan job `cluster`, reading only its spool directory; the node clusters.

        `exits` gives a node's exit code (or one per attempt; 0 otherwise). With `only`, just those
        nodes run (when ready) and DAGMan goes on with a later call; `finish` ends the DAGMan job
        once nothing more can run.
        """
        ad = self.jobs[(cluster, 0)]
        if ad["JobUniverse"] != 7 or ad["JobStatus"] not in (1, 2):
            raise RuntimeError(f"job {cluster} is not a DAGMan job that can run (status {ad['JobStatus']})")
        spool = self._sandbox(ad)
        args = shlex.split(str(ad["Args"]).strip().removeprefix('"').removesuffix('"'))  # new syntax
        dag_name = args[args.index("-Dag") + 1] if "-Dag" in args else ""
        if Path(dag_name).is_absolute() or not (spool / dag_name).is_file():
            raise FileNotFoundError(f"DAGMan cannot read the DAG file {dag_name!r} in its spool directory")
        state = self._dags.setdefault(cluster, {"done": set(), "failed": set(), "runs": {}})
        nodes, final, parents, vars_, retries = _read_written_dag((spool / dag_name).read_text())
        if ad["JobStatus"] != 2:
            self.start(cluster, 0)
        ran: list[int] = []
        exits = exits or {}

        def blocked(name: str) -> bool:
            return any(p in state["failed"] or blocked(p) for p in parents.get(name, []))

        moved = True
        while moved:
            moved = False
            for name in [n for n in nodes if n != final]:
                if (
                    name in state["done"]
                    or name in state["failed"]
                    or (only is not None and name not in only)
                ):
                    continue
                if not all(p in state["done"] for p in parents.get(name, [])):
                    continue
                ran += self._run_node(
                    cluster, spool, name, nodes[name], vars_.get(name, {}), retries, exits, state
                )
                moved = True
        rest = [n for n in nodes if n != final and n not in state["done"] and n not in state["failed"]]
        if finish and all(blocked(n) for n in rest):
            if final is not None:
                ran += self._run_node(
                    cluster, spool, final, nodes[final], vars_.get(final, {}), retries, exits, state
                )
            ok = not state["failed"] and not rest
            self.run(cluster, 0, exit_code=0 if ok else 1, out="", err="")
        return ran

    def _run_node(
        self,
        dagman_cluster: int,
        spool: Path,
        name: str,
        submit_file: str,
        node_vars: dict[str, str],
        retries: dict[str, int],
        exits: dict[str, int | list[int]],
        state: dict[str, Any],
    ) -> list[int]:
        codes = exits.get(name, 0)
        codes = codes if isinstance(codes, list) else [codes]
        clusters = []
        for retry in range(retries.get(name, 0) + 1):
            sub = htcondor2.Submit((spool / submit_file).read_text())
            for key, value in node_vars.items():
                sub[key] = value.replace("$(RETRY)", str(retry))
            sub["MY.DAGManJobId"] = str(dagman_cluster)
            sub["MY.DAGNodeName"] = f'"{name}"'
            with contextlib.chdir(spool):  # DAGMan submits from its working directory
                node = self.submit(sub).cluster()
            clusters.append(node)
            code = codes[min(retry, len(codes) - 1)]
            self.run(node, 0, exit_code=code, out=f"node {name} attempt {retry}\n")
            if code == 0:
                state["done"].add(name)
                return clusters
        state["failed"].add(name)
        return clusters


def _read_written_dag(
    text: str,
) -> tuple[dict[str, str], str | None, dict[str, list[str]], dict[str, dict[str, str]], dict[str, int]]:
    """The statements of a DAG file as htcondor2.dags writes them (what the fake's DAGMan needs)."""
    nodes: dict[str, str] = {}
    parents: dict[str, list[str]] = {}
    node_vars: dict[str, dict[str, str]] = {}
    retries: dict[str, int] = {}
    final = None
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] in ("JOB", "FINAL"):
            nodes[words[1]] = words[2]
            if words[0] == "FINAL":
                final = words[1]
        elif words[0] == "PARENT":
            at = words.index("CHILD")
            for child in words[at + 1 :]:
                parents.setdefault(child, []).extend(words[1:at])
        elif words[0] == "VARS":
            for key, value in re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', line.split(None, 2)[2]):
                node_vars.setdefault(words[1], {})[key] = value
        elif words[0] == "RETRY":
            retries[words[1]] = int(words[2])
    return nodes, final, parents, node_vars, retries
