"""A vetted workflow for HTCondor's DAGMan: written with the bindings' DAG writer (htcondor2.dags),
submitted as the DAGMan job `htcondor2.Submit.from_dag` describes, followed through the queue.

Every node's submit description is built from the vetted values (`ParsedSubmit.body`, never the
user's text), PRE and POST scripts are already part of the node's job (its wrapper), so the DAG
file has no SCRIPT lines: DAGMan runs nothing on the schedd's machine but the node jobs. The
DAGMan job itself is given no environment of the portal's (`from_dag` would copy PATH, HOME,
BEARER_TOKEN and more into it with `getenv`); it keeps only DAGMan's own log settings.

DAGMan reads the DAG and the node files from the submitting machine's disk, so this path needs a
schedd that shares the portal's file system for BATCH_ROOT (a schedd on the portal's machine, or a
shared mount); a remote schedd would need the DAG spooled, which the portal does not do yet.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestration.batch.base import BatchError, ExecutorUnavailable
from orchestration.batch.validate import check_file_name

DAG_FILE = "workflow.dag"
NODE_SUFFIX = ":0"  # the writer names a one-node layer "<name>:0"
# JobStatus -> the node's state, as condor_q reports node jobs
_STATUS = {1: "idle", 2: "running", 3: "removed", 4: "completed", 5: "held", 6: "running", 7: "idle"}


@dataclass(frozen=True)
class DagmanNode:
    name: str
    parents: list[str]
    body: dict[str, str]  # the vetted description without its queue statement
    vars: dict[str, str] = field(default_factory=dict)  # the job's queue variables: DAGMan VARS
    final: bool = False
    retries: int = 0
    unless_exit: int | None = None
    priority: int = 0
    category: str = ""
    abort_exit: int | None = None
    abort_return: int | None = None


@dataclass(frozen=True)
class NodeJob:
    """A node job in the schedd's queue or history (DAGManJobId says whose)."""

    node: str
    cluster: int
    state: str  # idle, running, held, removed, completed
    exit_code: int | None


def write_workflow(
    nodes: list[DagmanNode], maxjobs: dict[str, int], files: dict[str, bytes], dag_dir: Path
) -> Path:
    """Write the node files, the node submit files and the DAG file; return the DAG file's path."""
    import htcondor2
    import htcondor2.dags as dags

    dag_dir.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        problem = check_file_name(name, "file")
        if problem:
            raise BatchError(problem)
        (dag_dir / name).write_bytes(content)
    # Not max_jobs_by_category: the bindings' writer (25.14.1) writes it as "CATEGORY name N", which
    # DAGMan reads as a node's category; the MAXJOBS lines are appended below.
    dag = dags.DAG()
    made: dict[str, Any] = {}
    finals: list[tuple[str, Any]] = []
    for node in nodes:
        desc = dict(node.body)
        desc["initialdir"] = str(dag_dir)
        kwargs: dict[str, Any] = {
            "name": node.name,
            "submit_description": htcondor2.Submit(desc),
            "vars": [dict(node.vars)] if node.vars else None,
        }
        if node.retries:
            kwargs["retries"] = node.retries
            if node.unless_exit is not None:
                kwargs["retry_unless_exit"] = node.unless_exit
        if node.priority:
            kwargs["priority"] = node.priority
        if node.category:
            kwargs["category"] = node.category
        if node.abort_exit is not None:
            kwargs["abort"] = dags.DAGAbortCondition(
                node_exit_value=node.abort_exit, dag_return_value=node.abort_return
            )
        if node.final:
            dag.final(**kwargs)
            finals.append((node.name, kwargs["submit_description"]))
            continue
        made[node.name] = dag.layer(**kwargs)
        for parent in node.parents:
            if parent in made:  # a parent left out (done before, in a rescue run) is no edge
                made[parent].add_children(made[node.name])
    path = dags.write_dag(dag, dag_dir, dag_file_name=DAG_FILE)
    for name, sub in finals:  # the writer leaves the FINAL node's submit file out
        (dag_dir / f"{name}.sub").write_text(str(sub))
    if maxjobs:
        with path.open("a") as f:
            for category, limit in sorted(maxjobs.items()):
                f.write(f"MAXJOBS {category} {int(limit)}\n")
    return path


def dagman_description(dag_file: Path) -> Any:
    """The DAGMan job for the DAG file, as from_dag makes it, without the portal's environment."""
    import htcondor2

    try:
        sub = htcondor2.Submit.from_dag(str(dag_file), {"force": True})  # a repeated operation rewrites it
    except htcondor2.HTCondorException as exc:
        raise BatchError(f"HTCondor could not prepare the DAG for DAGMan: {exc}") from exc
    if "getenv" in sub:
        sub["getenv"] = ""  # keys cannot be removed; an empty value has no effect
    return sub


def submit_workflow(schedd_factory: Callable[[], Any], dag_file: Path, key: str) -> int:
    """Submit the DAGMan job; its cluster."""
    import htcondor2

    sub = dagman_description(dag_file)
    sub["MY.PortalSubmitKey"] = f'"{key}"'
    try:
        return int(schedd_factory().submit(sub).cluster())
    except htcondor2.HTCondorException as exc:
        raise ExecutorUnavailable(f"The HTCondor schedd cannot be reached: {exc}") from exc


def node_jobs(schedd_factory: Callable[[], Any], cluster: int) -> tuple[list[NodeJob], str | None]:
    """The DAG's node jobs (queue, then history) and the DAGMan job's own state (None once gone)."""
    import htcondor2

    projection = ["ClusterId", "DAGNodeName", "JobStatus", "ExitCode"]
    try:
        schedd = schedd_factory()
        live = schedd.query(f"DAGManJobId == {int(cluster)}", projection)
        done = schedd.history(f"DAGManJobId == {int(cluster)}", projection)
        me = schedd.query(f"ClusterId == {int(cluster)}", ["JobStatus"])
    except htcondor2.HTCondorException as exc:
        raise ExecutorUnavailable(f"The HTCondor schedd cannot be reached: {exc}") from exc
    out: dict[str, NodeJob] = {}
    for ad in [*done, *live]:  # a retried node: the live job wins over its earlier attempts
        name = str(ad.get("DAGNodeName", "")).removesuffix(NODE_SUFFIX)
        code = ad.get("ExitCode")
        out[name] = NodeJob(
            name,
            int(ad["ClusterId"]),
            _STATUS.get(int(ad["JobStatus"]), "idle"),
            int(code) if code is not None else None,
        )
    own = _STATUS.get(int(me[0]["JobStatus"]), "idle") if me else None
    return list(out.values()), own


def act(schedd_factory: Callable[[], Any], cluster: int, action: str) -> None:
    """Hold, release or remove the DAGMan job (and with it, as DAGMan does, its node jobs)."""
    import htcondor2

    what = {
        "hold": htcondor2.JobAction.Hold,
        "release": htcondor2.JobAction.Release,
        "remove": htcondor2.JobAction.Remove,
    }
    try:
        schedd_factory().act(what[action], f"ClusterId == {int(cluster)}")
    except htcondor2.HTCondorException as exc:
        raise ExecutorUnavailable(f"The HTCondor schedd cannot be reached: {exc}") from exc
