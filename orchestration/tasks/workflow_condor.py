"""Workflows on an HTCondor pool: written with htcondor2.dags, submitted with Submit.from_dag and
spooled (the schedd never reads the portal's disk), node states followed from the queue and history
by DAGManJobId (beat, `refresh_dags`); when DAGMan ends, its spool directory (the nodes' .out, .err
and event logs) is retrieved into the workflow's staging directory."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.utils import timezone

from orchestration import backends
from orchestration.batch import dagman
from orchestration.batch.base import BatchError, ExecutorUnavailable, PoolProfile
from orchestration.batch.dag import uses_retry
from orchestration.batch.submit import profile_lines
from orchestration.errors import TransientError, UserFacingError
from portal.models import Workflow, WorkflowNode
from portal.models.workflows import node_script

log = logging.getLogger(__name__)
N = WorkflowNode


def _schedd() -> Any:
    return backends.SCHEDD_FACTORY()


def dag_dir(wf: Workflow) -> Any:
    return settings.BATCH_ROOT / "htcondor" / "dags" / wf.key


def dagman_nodes(wf: Workflow) -> list[dagman.DagmanNode]:
    """The nodes still to run, from their vetted jobs; done nodes (a rescue run's) are left out."""
    rows = list(WorkflowNode.objects.filter(workflow=wf).order_by("index"))
    name_of = {n.index: n.name for n in rows}
    out = []
    for n in rows:
        if n.state == N.DONE:
            continue
        job = n.spec["job"]
        if len(job["jobs"]) != 1:
            raise UserFacingError(
                f"Node {n.name} makes {len(job['jobs'])} jobs; on the HTCondor pool each node's submit file "
                "must queue one job."
            )
        body = dict(job["body"])
        for key, value in profile_lines(PoolProfile(settings.HTCONDOR_POOL_PROFILE)):
            body.setdefault(key, value)  # what canfar_submit adds, as for a batch (no snapshot chosen)
        body["executable"] = job["executable"]
        if job["transfer_input_files"]:
            body["transfer_input_files"] = ", ".join(job["transfer_input_files"])
        out.append(
            dagman.DagmanNode(
                name=n.name,
                parents=[name_of[p] for p in n.parents],
                body=body,
                vars=dict(job["jobs"][0][6]),
                final=n.final,
                retries=n.retries,
                unless_exit=n.unless_exit,
                priority=n.priority,
                category=n.category,
                abort_exit=n.abort_exit,
                abort_return=n.spec.get("abort_return"),
                retry_env=bool(job.get("wrapper")) and uses_retry(str(job["wrapper"])),
            )
        )
    return out


def submit_dag(wf: Workflow, progress: Any) -> None:
    if wf.dagman_cluster:
        return  # already submitted (a repeated operation)
    progress(10, f"Writing the DAG of {wf.num_nodes} nodes for DAGMan")
    try:
        nodes = dagman_nodes(wf)
        files = {}
        for n in WorkflowNode.objects.filter(workflow=wf).exclude(state=N.DONE):
            job = n.spec["job"]
            files[job["executable"]] = node_script(wf, n).encode()
            for name in n.inputs:
                if name in wf.files:
                    files[name] = wf.files[name].encode()
        path = dagman.write_workflow(nodes, dict(wf.maxjobs), files, dag_dir(wf))
        progress(50, "Sending the DAG and the nodes' files to the schedd")
        cluster = dagman.submit_workflow(_schedd, path, wf.key, list(files), settings.HTCONDOR_DAGMAN)
    except ExecutorUnavailable as exc:
        raise TransientError(str(exc)) from exc
    except BatchError as exc:
        Workflow.objects.filter(pk=wf.pk).update(state=Workflow.NOT_SUBMITTED, error=str(exc)[:2000])
        raise UserFacingError(str(exc)) from exc
    Workflow.objects.filter(pk=wf.pk).update(state=Workflow.RUNNING, dagman_cluster=cluster)
    WorkflowNode.objects.filter(workflow=wf, state=N.WAITING).update(note="DAGMan submits it")
    progress(100, f"Submitted to DAGMan as cluster {cluster}")


def control_dag(wf: Workflow, action: str) -> None:
    if not wf.dagman_cluster:
        raise UserFacingError("The workflow has not reached the pool yet.")
    try:
        dagman.act(_schedd, wf.dagman_cluster, action)
    except ExecutorUnavailable as exc:
        raise TransientError(str(exc)) from exc
    Workflow.objects.filter(pk=wf.pk).update(held=action == "hold")


def refresh_dag(wf: Workflow) -> int:
    """Node states from the node jobs DAGMan submitted; the workflow ends when the DAGMan job does."""
    if not wf.dagman_cluster:
        return 0
    jobs, own = dagman.node_jobs(_schedd, wf.dagman_cluster)
    changed = 0
    for job in jobs:
        if job.state == "completed":
            state = N.DONE if job.exit_code == 0 else N.FAILED
        elif job.state == "removed":
            state = N.REMOVED
        else:
            state = N.QUEUED
        note = {"running": "running", "held": "held", "idle": "idle"}.get(job.state, "")
        moved = (
            WorkflowNode.objects.filter(workflow=wf, name=job.node)
            .exclude(state=state)
            .update(
                state=state,
                exit_code=job.exit_code,
                note=note,
                finished_at=timezone.now() if state in N.FINAL_STATES else None,
            )
        )
        if moved:  # a new node job (a first run or a retry) moves its node: keep its cluster for its log
            _note_cluster(wf, job)
        changed += moved
    if own is None or own == "completed":  # DAGMan has exited: what never ran did not run
        if own == "completed":  # its spool directory holds the nodes' files until retrieved
            dagman.retrieve_workflow(_schedd, wf.dagman_cluster)
        WorkflowNode.objects.filter(workflow=wf, state__in=[N.WAITING, N.READY, N.QUEUED]).update(
            state=N.NOT_RUN, note="DAGMan did not run it"
        )
        counts = wf.node_counts()
        final = Workflow.DONE if counts[N.DONE] == counts["total"] else Workflow.FAILED
        Workflow.objects.filter(pk=wf.pk, finished=None).update(state=final, finished=timezone.now())
    return changed


def _note_cluster(wf: Workflow, job: dagman.NodeJob) -> None:
    node = WorkflowNode.objects.filter(workflow=wf, name=job.node).only("pk", "spec").first()
    if node is not None and node.spec.get("cluster") != job.cluster:
        WorkflowNode.objects.filter(pk=node.pk).update(spec={**node.spec, "cluster": job.cluster})


def refresh_dags(limit: int = 50) -> int:
    moved = 0
    for wf in Workflow.objects.filter(executor="htcondor", state=Workflow.RUNNING).exclude(
        dagman_cluster=None
    )[:limit]:
        try:
            moved += refresh_dag(wf)
        except ExecutorUnavailable as exc:
            log.warning("workflow %s: %s", wf.pk, exc)
    return moved
