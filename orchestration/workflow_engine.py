"""Workflows on the local workers: a node's jobs are sent when its parents are done.

The portal does what DAGMan does, with the batch machinery: each node is a batch submission
whose jobs stay unsent (so no worker can claim them: the claim query takes only jobs with a
cluster) until the node is ready; then its jobs go to the local executor and the workers pull
them like any batch job, highest PRIORITY first. When a node's submission finishes
(`node_finished`, called by the batch sync as its last job ends), the node is done or failed:
a failed node is retried (RETRY, unless UNLESS-EXIT), or its descendants are marked not run;
ABORT-DAG-ON stops the workflow; children whose parents are all done become ready, and ready
nodes are sent while their category has room (MAXJOBS) and the workflow has fewer than
MAX_QUEUED nodes in the queue. The FINAL node runs when nothing else can. Every step is a
conditional update, so two workers finishing two parents at once send the child once; beat
(`refresh_workflows`, in `tasks/workflows.py`) repeats the step for every running workflow, which
makes up for a worker that died between two of them.

The engine sits below the batch sync, which calls ``node_finished``, and below the task modules;
it imports neither. Where it needs them it is given them: ``node_finished`` and
``act_on_queued`` take the function that syncs a submission's jobs (the batch sync's
``sync_submission``, from whoever calls), and workers are woken through
``orchestration/local_wake.py``, which names the pull task by its dotted path.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.utils import timezone

from orchestration import local_wake
from orchestration.backends import executor_for, local_services
from orchestration.batch.base import BatchError, ParsedJob, ParsedSubmit
from orchestration.batch.dag import with_retry
from orchestration.errors import UserFacingError
from portal.certificates import proxy_for_jobs
from portal.models import Job, Operation, Submission, Workflow, WorkflowNode
from portal.models.workflows import make_node_submission, node_script

log = logging.getLogger(__name__)

MAX_QUEUED = 64  # nodes of one workflow in the queue at once; more become queued as these end
N = WorkflowNode
SyncJobs = Callable[[Submission], object]  # reads the executor's view of a submission's jobs into their rows


def _parsed_of(node: WorkflowNode) -> ParsedSubmit:
    """The node's vetted job, as recorded."""
    job = node.spec["job"]
    return ParsedSubmit(
        text="",
        executable=job["executable"],
        jobs=[ParsedJob(*row) for row in job["jobs"]],
        request_cpus=job["request_cpus"],
        request_memory_mb=job["request_memory_mb"],
        request_disk_mb=job["request_disk_mb"],
        transfer_input_files=list(job["transfer_input_files"]),
        body=dict(job["body"]),
        queue_vars=list(job["queue_vars"]),
    )


def _send(wf: Workflow, node: WorkflowNode) -> int:
    """Send a queued node's jobs to the local executor (again, for a retry); how many jobs.

    The executor's key names the node and the attempt, so a repeated send returns the same
    cluster; the node's submission and jobs are then written in one transaction.
    """
    attempt = node.attempts + 1
    key = f"{wf.key}-{node.index}-{attempt}"
    job = node.spec["job"]
    files = {name: wf.files[name].encode() for name in node.inputs if name in wf.files}
    script = node_script(wf, node)
    if job.get("wrapper"):  # PRE/POST scripts: this attempt's $RETRY, written in as a number
        script = with_retry(script, attempt - 1)
    files[job["executable"]] = script.encode()
    extra: dict[str, Any] = {}
    if (services := local_services(wf.owner)) is not None:
        extra["services"] = services
    handle = executor_for("local").submit(
        _parsed_of(node), files, key=key, proxy=proxy_for_jobs(wf.owner), **extra
    )
    now = timezone.now()
    sent = {"cluster": handle.cluster, "state": Job.IDLE}
    keys = {"woken_at": now, "submit_keys": {"all": {"key": key, "lost": []}}}
    with transaction.atomic():
        node.workflow = wf
        sub = make_node_submission(node, jobs=sent, submission=keys, attempts=attempt)
        if getattr(node, "made_now", False):
            return handle.num_jobs
        Job.objects.filter(submission=sub).update(  # a retry: the same rows, sent again
            **sent,
            exit_code=None,
            signal=None,
            host="",
            hold_reason="",
            remove_reason="",
            started_at=None,
            finished_at=None,
            claimed_by="",
            pid=None,
        )
        Submission.objects.filter(pk=sub.pk).update(state=Submission.ACTIVE, finished=None, error="", **keys)
        WorkflowNode.objects.filter(pk=node.pk).update(attempts=attempt)
    return handle.num_jobs


def start_local(wf: Workflow) -> int:
    """Mark the roots (and, in a rescue run, nodes whose parents were all done before) ready; dispatch."""
    rows = list(
        WorkflowNode.objects.filter(workflow=wf).values_list("pk", "index", "state", "parents", "final")
    )
    done = {index for _, index, state, _, _ in rows if state == N.DONE}
    ready = [
        pk
        for pk, _, state, parents, final in rows
        if state == N.WAITING and not final and done.issuperset(parents)
    ]
    WorkflowNode.objects.filter(pk__in=ready, state=N.WAITING).update(state=N.READY)
    Workflow.objects.filter(pk=wf.pk, state=Workflow.RECORDED).update(state=Workflow.RUNNING)
    return advance(wf.pk, from_worker=False)


def advance(workflow_id: int, from_worker: bool = True) -> int:
    """Send ready nodes while there is room; start the FINAL node or close the workflow when nothing is
    left. Returns how many nodes were sent. Safe to call at any time, from any worker, repeatedly."""
    with transaction.atomic():
        wf, chosen = _choose(workflow_id)
    return _send_all(wf, chosen, from_worker)


def _choose(workflow_id: int) -> tuple[Workflow, list[WorkflowNode]]:
    """The nodes to send now, marked queued (inside the caller's transaction)."""
    wf = Workflow.objects.select_for_update(of=("self",)).select_related("owner").get(pk=workflow_id)
    if wf.state != Workflow.RUNNING and not (
        wf.state in (Workflow.ABORTED, Workflow.REMOVED) and not wf.finished
    ):
        return wf, []
    nodes = WorkflowNode.objects.filter(workflow=wf)
    chosen: list[WorkflowNode] = []
    if wf.state == Workflow.RUNNING and not wf.held:
        queued = list(nodes.filter(state=N.QUEUED).values_list("category", flat=True))
        room = MAX_QUEUED - len(queued)
        in_use: dict[str, int] = {}
        for category in queued:
            in_use[category] = in_use.get(category, 0) + 1
        if room > 0:
            for node in nodes.filter(state=N.READY, final=False).order_by("-priority", "index")[: room * 4]:
                limit = wf.maxjobs.get(node.category) if node.category else None
                if limit is not None and in_use.get(node.category, 0) >= int(limit):
                    continue
                in_use[node.category] = in_use.get(node.category, 0) + 1
                chosen.append(node)
                if len(chosen) >= room:
                    break
        if chosen:
            nodes.filter(pk__in=[n.pk for n in chosen], state=N.READY).update(state=N.QUEUED)
            return wf, chosen
        if queued:
            return wf, []
    if nodes.filter(final=False, state__in=[N.WAITING, N.READY, N.QUEUED]).exists():
        return wf, []
    final = nodes.filter(final=True, state=N.WAITING).first()
    if final is not None:
        nodes.filter(pk=final.pk, state=N.WAITING).update(state=N.QUEUED)
        return wf, [final]
    if not nodes.filter(final=True, state=N.QUEUED).exists():
        _close(wf)
    return wf, []


def _send_all(wf: Workflow, chosen: list[WorkflowNode], from_worker: bool) -> int:
    sent = 0
    for node in chosen:
        sent += send_or_fail(wf, node)
    extra = sent - (1 if from_worker else 0)  # a worker that just ended a job pulls the next itself
    if extra > 0:
        local_wake.wake_local_workers(extra)
    return len(chosen)


def send_or_fail(wf: Workflow, node: WorkflowNode) -> int:
    try:
        return _send(wf, node)
    except (BatchError, UserFacingError, OSError) as exc:
        log.warning("workflow %s: node %s not sent: %s", wf.pk, node.name, exc)
        WorkflowNode.objects.filter(pk=node.pk).update(
            state=N.FAILED, note=f"Not sent: {exc}"[:500], finished_at=timezone.now()
        )
        _not_run_below(wf, [node.index])
        return 0


def _close(wf: Workflow) -> None:
    """Nothing can run any more: the workflow's final state, and one line in the activity panel."""
    counts = wf.node_counts()
    if wf.state == Workflow.RUNNING:
        state = Workflow.DONE if counts[N.DONE] == counts["total"] else Workflow.FAILED
    else:
        state = wf.state
    if not Workflow.objects.filter(pk=wf.pk, finished=None).update(state=state, finished=timezone.now()):
        return
    now = timezone.now()
    failed = counts[N.FAILED]
    words = {N.DONE: "done", N.FAILED: "failed", N.NOT_RUN: "not run", N.REMOVED: "removed"}
    summary = " · ".join(f"{counts[s]} {w}" for s, w in words.items() if counts[s])
    Operation.objects.create(
        owner_id=wf.owner_id,
        project_id=wf.project_id,
        kind="workflow_finished",
        title=f"Workflow {wf.name} {dict(Workflow.STATES)[state].lower()}",
        target=f"workflow:{wf.pk}",
        state=Operation.SUCCEEDED if state == Workflow.DONE else Operation.FAILED,
        progress=100,
        message=f"{counts['total']} nodes: {summary}"[:500],
        error=""
        if state == Workflow.DONE
        else f"{failed} node{'s' if failed != 1 else ''} failed. {summary}",
        started=now,
        finished=now,
    )


def _not_run_below(wf: Workflow, failed: list[int], state: str = N.NOT_RUN) -> int:
    """Descendants of failed nodes that have not started are marked not run (DAGMan never runs them)."""
    children = dict(WorkflowNode.objects.filter(workflow=wf).values_list("index", "children"))
    seen: set[int] = set()
    todo = deque(c for i in failed for c in children.get(i, []))
    while todo:
        i = todo.popleft()
        if i in seen:
            continue
        seen.add(i)
        todo.extend(children.get(i, []))
    return WorkflowNode.objects.filter(
        workflow=wf, index__in=list(seen), state__in=[N.WAITING, N.READY]
    ).update(state=state, note="an ancestor failed", finished_at=timezone.now())


def node_finished(submission_id: int, counts: dict[str, int] | None = None, *, sync: SyncJobs) -> None:
    """The node's jobs have all ended: decide the node, mark its children ready, choose what to send
    next (one transaction), then send it. ``sync`` syncs the jobs of the nodes an ABORT-DAG-ON removes."""
    retry: WorkflowNode | None = None
    abort = False
    with transaction.atomic():
        workflow_id = (
            WorkflowNode.objects.filter(submission_id=submission_id)
            .values_list("workflow_id", flat=True)
            .first()
        )
        if workflow_id is None:
            return
        # The ends of one workflow's nodes take turns (a lock on its row): parents that finish at the same
        # moment would otherwise each miss the other's DONE (read committed) and never ready their child.
        list(Workflow.objects.select_for_update(of=("self",)).filter(pk=workflow_id).values_list("pk"))
        node = (
            WorkflowNode.objects.select_related("workflow__owner").filter(submission_id=submission_id).first()
        )
        if node is None or node.state != N.QUEUED:
            return
        wf = node.workflow
        if counts is not None and counts.get(Job.DONE, 0) == counts.get("total", -1):
            jobs: list[tuple[str, int | None]] = [
                (Job.DONE, 0)
            ]  # the batch sync has just counted them: all done
        else:
            jobs = list(Job.objects.filter(submission_id=submission_id).values_list("state", "exit_code"))
        ok = all(state == Job.DONE for state, _ in jobs)
        removed = any(state == Job.REMOVED for state, _ in jobs)
        codes = [code for state, code in jobs if state == Job.FAILED and code is not None]
        code = codes[0] if codes else (0 if ok else None)
        now = timezone.now()
        if ok:
            if WorkflowNode.objects.filter(pk=node.pk, state=N.QUEUED).update(
                state=N.DONE, exit_code=0, finished_at=now, note=""
            ):
                _ready_children(wf, node)
        elif removed:
            WorkflowNode.objects.filter(pk=node.pk, state=N.QUEUED).update(
                state=N.REMOVED, finished_at=now, note="removed"
            )
            _not_run_below(wf, [node.index], N.REMOVED)
        else:
            abort = node.abort_exit is not None and code == node.abort_exit
            if (
                not abort
                and node.attempts <= node.retries
                and not (node.unless_exit is not None and code == node.unless_exit)
                and wf.state == Workflow.RUNNING
            ):
                retry = node
            else:
                note = f"exit code {code}" if code is not None else "its job did not complete"
                if WorkflowNode.objects.filter(pk=node.pk, state=N.QUEUED).update(
                    state=N.FAILED, exit_code=code, finished_at=now, note=note[:500]
                ):
                    _not_run_below(wf, [node.index])
                    if abort:
                        _abort(wf, f"node {node.name} exited with {code} (ABORT-DAG-ON)", sync)
        chosen: list[WorkflowNode] = []
        if retry is None and not abort:
            wf, chosen = _choose(wf.pk)
    if retry is not None:
        send_or_fail(wf, retry)
        return
    if abort:
        advance(wf.pk)  # the removal of running nodes is under way; the FINAL node follows
        return
    _send_all(wf, chosen, from_worker=True)


def _ready_children(wf: Workflow, node: WorkflowNode) -> None:
    if not node.children:
        return
    kids = list(
        WorkflowNode.objects.filter(
            workflow=wf, index__in=node.children, state=N.WAITING, final=False
        ).values_list("pk", "parents")
    )
    if all(ps == [node.index] for _, ps in kids):  # their only parent is this node, now done
        WorkflowNode.objects.filter(pk__in=[pk for pk, _ in kids], state=N.WAITING).update(state=N.READY)
        return
    parents = {p for _, ps in kids for p in ps}
    done = set(
        WorkflowNode.objects.filter(workflow=wf, index__in=list(parents), state=N.DONE).values_list(
            "index", flat=True
        )
    )
    ready = [pk for pk, ps in kids if done.issuperset(ps)]
    if ready:
        WorkflowNode.objects.filter(pk__in=ready, state=N.WAITING).update(state=N.READY)


def _abort(wf: Workflow, why: str, sync: SyncJobs) -> None:
    """ABORT-DAG-ON: nodes not started are not run, running ones are removed; the FINAL node still runs."""
    if not Workflow.objects.filter(pk=wf.pk, state=Workflow.RUNNING).update(
        state=Workflow.ABORTED, error=f"Aborted: {why}"[:2000]
    ):
        return
    nodes = WorkflowNode.objects.filter(workflow=wf, final=False)
    nodes.filter(state__in=[N.WAITING, N.READY]).update(state=N.NOT_RUN, note="the workflow was aborted")
    act_on_queued(wf, "remove", sync)


def act_on_queued(wf: Workflow, action: str, sync: SyncJobs) -> int:
    """Hold, release or remove the jobs of the workflow's queued nodes, cluster by cluster, then sync
    their submissions with ``sync``; how many jobs were acted on."""
    executor = executor_for("local")
    jobs = Job.objects.filter(submission__workflow=wf, submission__workflow_node__state=N.QUEUED).exclude(
        cluster=None
    )
    wanted = {
        "hold": [Job.IDLE, Job.RUNNING],
        "release": [Job.HELD],
        "remove": [Job.IDLE, Job.RUNNING, Job.HELD],
    }
    by_cluster: dict[int, list[int]] = {}
    subs: set[int] = set()
    for cluster, proc, sub_id in jobs.filter(state__in=wanted[action]).values_list(
        "cluster", "proc", "submission_id"
    ):
        by_cluster.setdefault(int(cluster or 0), []).append(proc)
        subs.add(sub_id)
    for cluster, procs in by_cluster.items():
        getattr(executor, action)(cluster, procs)
    for sub in Submission.objects.filter(pk__in=subs):
        sync(sub)
    return sum(len(p) for p in by_cluster.values())
