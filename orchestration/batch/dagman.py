"""A vetted workflow for HTCondor's DAGMan: written with the bindings' DAG writer (htcondor2.dags),
submitted as the DAGMan job `htcondor2.Submit.from_dag` describes, spooled, followed through the queue.

Every node's submit description is built from the vetted values (`ParsedSubmit.body`, never the
user's text), PRE and POST scripts are already part of the node's job (its wrapper), so the DAG
file has no SCRIPT lines: DAGMan runs nothing on the schedd's machine but the node jobs. The
DAGMan job itself is given no environment of the portal's (`from_dag` would copy PATH, HOME,
BEARER_TOKEN and more into it with `getenv`); it keeps only DAGMan's own log settings.

The schedd never reads the portal's disk. The DAGMan job is submitted with spooling, as batch jobs
are (`HTCondorExecutor.submit`): it waits on hold until `spool()` has sent the DAG file, the node
submit files and every file the nodes need; its executable is the schedd's own condor_dagman
(`transfer_executable = false`). DAGMan then runs in the job's spool directory, where every name is
relative, so the node jobs it submits read their inputs there and write their .out, .err and event
log there. A spooled job stays in the queue once complete until its output is retrieved: the
portal retrieves the DAGMan job when it ends (`retrieve_workflow`), which brings the nodes' files
back into the workflow's staging directory, where the workflow's node pages read them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestration.batch.base import BatchError, ExecutorUnavailable, SubmissionLost
from orchestration.batch.dag import RETRY_VAR, RETRY_VARIABLE
from orchestration.batch.validate import check_file_name

DAG_FILE = "workflow.dag"
KEY_ATTR = "PortalSubmitKey"
HOLD_SPOOLING_INPUT = 16  # spooled jobs wait on this hold until their files arrive
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
    retry_env: bool = False  # its wrapper passes $RETRY to a script: DAGMan's $(RETRY) in its environment


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
    """Write the node files, the node submit files and the DAG file; return the DAG file's path.

    Node submit files name everything relatively and set no initialdir: DAGMan submits them from
    its own working directory, the DAGMan job's spool directory on the schedd."""
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
        desc = {k: v for k, v in node.body.items() if k.lower() != "initialdir"}
        node_vars = dict(node.vars)
        if node.retry_env:
            # DAGMan writes the attempt's retry number into $(RETRY) in VARS values; the wrapper reads
            # it from its environment and keeps it only if it is digits.
            node_vars[RETRY_VAR] = "$(RETRY)"
            desc["environment"] = f'"{RETRY_VARIABLE}=$({RETRY_VAR})"'
        kwargs: dict[str, Any] = {
            "name": node.name,
            "submit_description": htcondor2.Submit(desc),
            "vars": [node_vars] if node_vars else None,
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


def dagman_description(dag_file: Path, dagman: str) -> Any:
    """The DAGMan job for the DAG file, as from_dag makes it, without the portal's environment.

    `dagman` is condor_dagman's path on the schedd's machine; given, from_dag looks for none here."""
    import htcondor2

    try:
        # force: a repeated operation rewrites the files of an earlier attempt
        sub = htcondor2.Submit.from_dag(str(dag_file), {"force": True, "dagman": dagman})
    except htcondor2.HTCondorException as exc:
        raise BatchError(f"HTCondor could not prepare the DAG for DAGMan: {exc}") from exc
    if "getenv" in sub:
        sub["getenv"] = ""  # keys cannot be removed; an empty value has no effect
    return sub


def spooled_description(dag_file: Path, inputs: list[str], dagman: str, key: str) -> Any:
    """from_dag's DAGMan job made to run in its spool directory on a schedd that never sees our disk.

    from_dag names the DAG's files by their paths on this machine (the DAG, its lock file, DAGMan's
    logs); they are rewritten as names relative to the spool directory. The DAG file, the node
    submit files and `inputs` travel with the job; condor_dagman is the schedd's own.
    """
    sub = dagman_description(dag_file, dagman)
    stage = dag_file.parent
    for name in ("arguments", "environment", "output", "error", "log"):
        value = str(sub.get(name, ""))
        if value:
            sub[name] = value.replace(str(stage) + "/", "").replace(str(stage), ".")
    sub["executable"] = dagman
    sub["transfer_executable"] = "false"  # the schedd's condor_dagman, never a file of ours
    subs = sorted(p.name for p in stage.glob("*.sub") if not p.name.endswith(".condor.sub"))
    names = [dag_file.name, *subs, *(n for n in dict.fromkeys(inputs) if n not in subs)]
    for name in names:
        problem = check_file_name(name, "file")
        if problem:
            raise BatchError(problem)
    sub["transfer_input_files"] = ", ".join(str(stage / n) for n in names)
    sub["initialdir"] = str(stage)
    sub[f"MY.{KEY_ATTR}"] = f'"{key}"'
    return sub


def find_dagman(schedd_factory: Callable[[], Any], key: str) -> tuple[int, bool] | None:
    """The DAGMan job submitted with this key (queue or history), and whether its files arrived."""
    import htcondor2

    constraint = f'{KEY_ATTR} == "{key}"'
    projection = ["ClusterId", "JobStatus", "HoldReasonCode", "RemoveReason"]
    try:
        schedd = schedd_factory()
        ads = [*schedd.query(constraint, projection), *schedd.history(constraint, projection, match=-1)]
    except htcondor2.HTCondorException as exc:
        raise ExecutorUnavailable(f"The HTCondor schedd cannot be reached: {exc}") from exc
    if not ads:
        return None
    ad = ads[0]
    status, hold = int(ad.get("JobStatus", 0)), ad.get("HoldReasonCode")
    removed_in_staging = status == 3 and "staging" in str(ad.get("RemoveReason") or "").lower()
    through = not (status == 5 and hold == HOLD_SPOOLING_INPUT) and not removed_in_staging
    return int(ad["ClusterId"]), through


def submit_workflow(
    schedd_factory: Callable[[], Any], dag_file: Path, key: str, inputs: list[str], dagman: str
) -> int:
    """Submit the DAGMan job with spooling and send its files; its cluster. Idempotent per key.

    SubmissionLost when a cluster of this key never received its files (this call's spool failed,
    or an earlier worker died before or while spooling): the schedd removes such a cluster, so it
    is removed here too, and the workflow must be sent again under a new key.
    """
    import htcondor2

    found = find_dagman(schedd_factory, key)
    if found is not None:
        cluster, through = found
        if through:
            return cluster
        _remove(schedd_factory, cluster)
        raise SubmissionLost(f"DAGMan job {cluster} never received the workflow's files.", cluster)
    sub = spooled_description(dag_file, inputs, dagman, key)
    try:
        schedd = schedd_factory()
        result = schedd.submit(sub, spool=True)
    except htcondor2.HTCondorException as exc:
        raise ExecutorUnavailable(f"The HTCondor schedd cannot be reached: {exc}") from exc
    cluster = int(result.cluster())
    try:
        schedd.spool(result)
    except htcondor2.HTCondorException as exc:
        _remove(schedd_factory, cluster)
        raise SubmissionLost(
            f"HTCondor could not receive the workflow's files for DAGMan job {cluster} ({exc}).", cluster
        ) from exc
    return cluster


def _remove(schedd_factory: Callable[[], Any], cluster: int) -> None:
    import htcondor2

    with contextlib.suppress(htcondor2.HTCondorException):  # the schedd removes it by itself too
        schedd_factory().act(
            htcondor2.JobAction.Remove,
            f"ClusterId == {int(cluster)}",
            reason=("Removed by the portal: staging of the workflow's files failed", 0),
        )


def retrieve_workflow(schedd_factory: Callable[[], Any], cluster: int) -> None:
    """Bring the ended DAGMan job's spool directory back: the nodes' .out, .err and event logs.

    Harmless to repeat; a DAGMan job that did not complete (removed) has nothing to retrieve.
    """
    import htcondor2

    try:
        schedd_factory().retrieve(f"ClusterId == {int(cluster)} && JobStatus == 4")
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
