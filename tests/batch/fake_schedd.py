"""A stand-in for a remote htcondor2.Schedd: same method names and signatures, state in memory.

Submit descriptions are expanded by the real htcondor2.Submit; results are real
SubmitResult and classad2.ClassAd objects. Only the daemon is missing.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import classad2
import htcondor2
from htcondor2 import JobAction

_DEFAULT = object()


class FakeSchedd:
    def __init__(self) -> None:
        self.jobs: dict[tuple[int, int], classad2.ClassAd] = {}
        self.history_ads: list[classad2.ClassAd] = []
        self.spool_dir = Path(tempfile.mkdtemp(prefix="fake-spool-"))
        self.next_cluster = 100
        self.down = False
        self.submissions = 0

    def _check(self) -> None:
        if self.down:
            raise htcondor2.HTCondorException("Failed to connect to schedd (CEDAR:6001)")

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
            ad["JobStatus"] = 5 if spool else 1
            if spool:
                ad["HoldReasonCode"], ad["HoldReason"] = 16, "Spooling input data files"
            ad["Cmd"] = sub.expand("executable")
            ad["Args"] = sub.expand("arguments") if "arguments" in sub else ""
            ad["Iwd"] = sub.expand("initialdir")
            for key, attr in (("output", "Out"), ("error", "Err"), ("log", "UserLog")):
                if key in sub:
                    ad[attr] = sub.expand(key)
            ad["TransferInput"] = sub.expand("transfer_input_files") if "transfer_input_files" in sub else ""
            if "transfer_output_files" in sub:
                ad["TransferOutput"] = sub.expand("transfer_output_files")
            if "x509userproxy" in sub:
                ad["x509userproxy"] = sub.expand("x509userproxy")
            for key in body:
                if key.startswith("MY."):
                    ad[key[3:]] = classad2.ExprTree(sub.expand(key))
            if "Requirements" in body:
                ad["Requirements"] = classad2.ExprTree(sub.expand("Requirements"))
            self.jobs[(cluster, proc)] = ad
        return htcondor2.SubmitResult(
            cluster, 0, len(items), classad2.ClassAd(), classad2.ClassAd() if spool else None
        )

    def spool(self, result: htcondor2.SubmitResult) -> None:
        """Upload each job's input files from its Iwd, as the real spool() does."""
        self._check()
        for (cluster, proc), ad in self.jobs.items():
            if cluster != result.cluster():
                continue
            spool = self.spool_dir / f"{cluster}.{proc}"
            spool.mkdir()
            names = [ad["Cmd"], *[n.strip() for n in ad["TransferInput"].split(",") if n.strip()]]
            for name in names:
                shutil.copy(Path(ad["Iwd"]) / name, spool / name)  # a missing file fails like the real one
            if "x509userproxy" in ad:  # HTCondor sends the proxy with the job
                shutil.copy(ad["x509userproxy"], spool / Path(ad["x509userproxy"]).name)
            ad["JobStatus"] = 1
            del ad["HoldReasonCode"]
            del ad["HoldReason"]

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

    def _select(self, job_spec: list[str] | str | classad2.ExprTree | int) -> list[tuple[int, int]]:
        specs = job_spec if isinstance(job_spec, list) else [str(job_spec)]
        out = []
        for spec in specs:
            cluster, _, proc = spec.partition(".")
            out += [k for k in self.jobs if k[0] == int(cluster) and (not proc or k[1] == int(proc))]
        return out

    def act(
        self,
        action: JobAction,
        job_spec: list[str] | str | classad2.ExprTree | int,
        reason: str | None = None,
    ) -> classad2.ClassAd:
        self._check()
        keys = self._select(job_spec)
        for key in keys:
            ad = self.jobs[key]
            if action == JobAction.Hold and ad["JobStatus"] in (1, 2):
                ad["JobStatus"], ad["HoldReason"], ad["HoldReasonCode"] = 5, reason or "via condor_hold", 1
            elif action == JobAction.Release and ad["JobStatus"] == 5:
                ad["JobStatus"] = 1
            elif action == JobAction.Remove:
                ad["JobStatus"] = 3
                self.history_ads.append(self.jobs.pop(key))
        return classad2.ClassAd({"TotalSuccess": len(keys)})

    def retrieve(self, job_spec: list[str] | str | classad2.ExprTree | int) -> None:
        """Copy finished jobs' output from the spool into their Iwd."""
        self._check()
        for ad in self._match(str(job_spec), list(self.jobs.values())):
            spool = self.spool_dir / f"{ad['ClusterId']}.{ad['ProcId']}"
            names = [ad[attr] for attr in ("Out", "Err") if attr in ad]
            names += [n.strip() for n in str(ad.get("TransferOutput", "")).split(",") if n.strip()]
            for name in names:
                if (spool / name).exists():
                    shutil.copy(spool / name, Path(ad["Iwd"]) / name)

    # ---- what the pool would do: used by tests to move jobs along
    def run(
        self,
        cluster: int,
        proc: int,
        exit_code: int = 0,
        signal: int | None = None,
        out: str = "",
        files: dict[str, str] | None = None,
    ) -> None:
        ad = self.jobs[(cluster, proc)]
        ad["JobStatus"], ad["RemoteHost"], ad["JobCurrentStartDate"] = 2, "slot1@worker-7", 1700000000
        if signal is not None:
            ad["ExitBySignal"], ad["ExitSignal"] = True, signal
        else:
            ad["ExitBySignal"], ad["ExitCode"] = False, exit_code
        ad["JobStatus"], ad["CompletionDate"] = 4, 1700000060
        (self.spool_dir / f"{cluster}.{proc}" / ad["Out"]).write_text(out)
        for name, text in (files or {}).items():  # files the job wrote in its scratch directory
            (self.spool_dir / f"{cluster}.{proc}" / name).write_text(text)
