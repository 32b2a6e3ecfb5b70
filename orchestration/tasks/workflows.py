"""Workflow operations and beat: submit, hold, release or remove a workflow; go on with running ones.

A workflow runs on the local workers (``orchestration/workflow_engine.py``: a node's jobs are sent
when its parents are done) or as a DAGMan job on HTCondor (``workflow_condor.py``). The handlers
give the engine the batch sync's ``sync_submission`` where it acts on jobs.
"""

from __future__ import annotations

import logging

from django.db.models import Q
from django.utils import timezone

from orchestration import local_wake, workflow_engine
from orchestration.batch.base import BatchError, ExecutorUnavailable
from orchestration.batch_sync import sync_submission
from orchestration.errors import TransientError, UserFacingError
from orchestration.operations import Progress
from orchestration.tasks.workflow_condor import control_dag, refresh_dags, submit_dag
from portal.models import Operation, Submission, Workflow, WorkflowNode

log = logging.getLogger(__name__)

N = WorkflowNode


def workflow_submit(op: Operation, progress: Progress) -> None:
    wf = Workflow.objects.get(pk=op.params["workflow"], owner=op.owner)
    if wf.executor == "htcondor":
        submit_dag(wf, progress)
        return
    progress(10, f"Starting {wf.num_nodes} node{'s' if wf.num_nodes != 1 else ''} on the local workers")
    try:
        sent = workflow_engine.start_local(wf)
    except ExecutorUnavailable as exc:
        raise TransientError(str(exc)) from exc
    progress(100, f"Started: {sent} node{'s' if sent != 1 else ''} queued, the others wait for their parents")


def workflow_control(op: Operation, progress: Progress) -> None:
    """Hold, release or remove a whole workflow."""
    wf = Workflow.objects.get(pk=op.params["workflow"], owner=op.owner)
    action = op.params["action"]
    if wf.executor == "htcondor":
        control_dag(wf, action)
        progress(100, {"hold": "Held", "release": "Released", "remove": "Removed"}[action])
        return
    try:
        if action == "hold":
            Workflow.objects.filter(pk=wf.pk).update(held=True)
            workflow_engine.act_on_queued(wf, "hold", sync_submission)
        elif action == "release":
            Workflow.objects.filter(pk=wf.pk).update(held=False)
            released = workflow_engine.act_on_queued(wf, "release", sync_submission)
            if released:
                local_wake.wake_local_workers(released)
            workflow_engine.advance(wf.pk, from_worker=False)
        elif action == "remove":
            if Workflow.objects.filter(pk=wf.pk, state__in=Workflow.ACTIVE_STATES).update(
                state=Workflow.REMOVED, held=False
            ):
                WorkflowNode.objects.filter(workflow=wf, state__in=[N.WAITING, N.READY]).update(
                    state=N.REMOVED, note="the workflow was removed", finished_at=timezone.now()
                )
                workflow_engine.act_on_queued(wf, "remove", sync_submission)
            workflow_engine.advance(wf.pk, from_worker=False)
    except ExecutorUnavailable as exc:
        raise TransientError(str(exc)) from exc
    except BatchError as exc:
        raise UserFacingError(str(exc)) from exc
    progress(100, {"hold": "Held", "release": "Released", "remove": "Removed"}[action])


def refresh_workflows(limit: int = 100) -> int:
    """Beat: go on with every local workflow that is running (a finished node whose step was lost,
    a node queued by a worker that died before it sent the jobs)."""
    moved = 0
    for wf in Workflow.objects.filter(executor="local", state=Workflow.RUNNING)[:limit]:
        try:
            stuck = WorkflowNode.objects.filter(workflow=wf, state=N.QUEUED).filter(
                Q(submission=None) | Q(submission__state=Submission.RECORDED)
            )
            for node in stuck:
                workflow_engine.send_or_fail(wf, node)
            for sub_id in Submission.objects.filter(
                workflow=wf, state=Submission.FINISHED, workflow_node__state=N.QUEUED
            ).values_list("pk", flat=True):
                workflow_engine.node_finished(sub_id, sync=sync_submission)
            moved += workflow_engine.advance(wf.pk, from_worker=False)
        except Exception:
            log.exception("workflow %s: refresh failed", wf.pk)
    return moved + refresh_dags()
