"""Workflows: jobs that depend on jobs (a DAG), recorded whole before anything runs.

Each node is a batch submission of its own (`Submission.workflow`), holding the jobs its submit
file makes, so the job pages, logs and the local workers' claim query serve nodes as they serve
batches. The node rows say how the nodes depend on each other (`parents`/`children`, indices
in the workflow) and where each one is: waiting for parents, ready (parents done, waiting for
a slot of its category), queued (its jobs sent), done, failed, not run, removed.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.db.models import Count, Q
from django.utils import timezone

from portal.models.batch import Job, Submission


def _new_key() -> str:
    return uuid.uuid4().hex


class WorkflowQuerySet(models.QuerySet["Workflow"]):
    def for_user(self, user: Any) -> WorkflowQuerySet:
        return self.filter(owner=user)


class Workflow(models.Model):
    RECORDED, RUNNING, DONE, FAILED, ABORTED, REMOVED, NOT_SUBMITTED = (
        "recorded",
        "running",
        "done",
        "failed",
        "aborted",
        "removed",
        "notsent",
    )
    STATES = [
        (RECORDED, "Recorded"),
        (RUNNING, "Running"),
        (DONE, "Done"),
        (FAILED, "Finished with failures"),
        (ABORTED, "Aborted"),
        (REMOVED, "Removed"),
        (NOT_SUBMITTED, "Not submitted"),
    ]
    ACTIVE_STATES = (RECORDED, RUNNING)
    EXECUTORS = Submission.EXECUTORS

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="workflows")
    project = models.ForeignKey("portal.Project", null=True, blank=True, on_delete=models.SET_NULL)
    rescue_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="rescues"
    )
    name = models.CharField(max_length=64)
    key = models.CharField(max_length=40, unique=True, default=_new_key, editable=False)
    executor = models.CharField(max_length=12, choices=EXECUTORS, default="local")
    state = models.CharField(max_length=10, choices=STATES, default=RECORDED)
    held = models.BooleanField(default=False, help_text="no new node starts while held")
    dag_text = models.TextField(help_text="the DAG file as uploaded or as the form wrote it")
    files = models.JSONField(default=dict, help_text="the submit files and scripts, by name")
    maxjobs = models.JSONField(default=dict, help_text="MAXJOBS per category")
    num_nodes = models.PositiveIntegerField(default=0)
    dagman_cluster = models.PositiveIntegerField(null=True, blank=True, help_text="htcondor: DAGMan's job")
    error = models.TextField(blank=True)
    created = models.DateTimeField(default=timezone.now)
    finished = models.DateTimeField(null=True, blank=True)
    updated = models.DateTimeField(auto_now=True)

    objects = WorkflowQuerySet.as_manager()

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["owner", "-created"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.state})"

    @property
    def is_active(self) -> bool:
        return self.state in self.ACTIVE_STATES

    def node_counts(self) -> dict[str, int]:
        return node_counts_for([self.pk]).get(self.pk, empty_node_counts())


class WorkflowNode(models.Model):
    WAITING, READY, QUEUED, DONE, FAILED, NOT_RUN, REMOVED = (
        "waiting",
        "ready",
        "queued",
        "done",
        "failed",
        "notrun",
        "removed",
    )
    STATES = [
        (WAITING, "Waiting for parents"),
        (READY, "Ready"),
        (QUEUED, "Queued"),
        (DONE, "Done"),
        (FAILED, "Failed"),
        (NOT_RUN, "Not run"),
        (REMOVED, "Removed"),
    ]
    FINAL_STATES = (DONE, FAILED, NOT_RUN, REMOVED)

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="nodes")
    index = models.PositiveIntegerField(help_text="position in the DAG's topological order")
    name = models.CharField(max_length=100)
    stage = models.CharField(max_length=100, help_text="the node's submit file: nodes are drawn by stage")
    state = models.CharField(max_length=8, choices=STATES, default=WAITING)
    submission = models.OneToOneField(
        Submission, null=True, blank=True, on_delete=models.SET_NULL, related_name="workflow_node"
    )
    parents = models.JSONField(default=list, help_text="indices of the parent nodes")
    children = models.JSONField(default=list, help_text="indices of the child nodes")
    final = models.BooleanField(default=False, help_text="DAGMan's FINAL node: runs last, whatever happened")
    retries = models.PositiveSmallIntegerField(default=0)
    unless_exit = models.IntegerField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="runs started")
    category = models.CharField(max_length=64, blank=True)
    priority = models.IntegerField(default=0)
    abort_exit = models.IntegerField(null=True, blank=True)
    abort_return = models.IntegerField(null=True, blank=True)
    vars = models.JSONField(default=dict)
    scripts = models.JSONField(default=dict, help_text="PRE and POST scripts (run inside the node's job)")
    inputs = models.JSONField(default=list, help_text="names of the uploaded files the node's job needs")
    exit_code = models.IntegerField(null=True, blank=True)
    note = models.CharField(max_length=500, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["workflow", "index"]
        constraints = [models.UniqueConstraint(fields=["workflow", "index"], name="unique_node_index")]
        indexes = [models.Index(fields=["workflow", "state"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.state})"


NODE_STATES = [s for s, _ in WorkflowNode.STATES]


def empty_node_counts() -> dict[str, int]:
    return dict.fromkeys([*NODE_STATES, "running", "total"], 0)


def node_counts_for(workflow_ids: list[int]) -> dict[int, dict[str, int]]:
    """Per-workflow node counts by state (and how many queued nodes have a job running), two queries."""
    out: dict[int, dict[str, int]] = {}
    rows = (
        WorkflowNode.objects.filter(workflow_id__in=workflow_ids)
        .values("workflow_id", "state")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in rows:
        counts = out.setdefault(row["workflow_id"], empty_node_counts())
        counts[row["state"]] = row["n"]
        counts["total"] += row["n"]
    running = (
        WorkflowNode.objects.filter(
            workflow_id__in=workflow_ids, state=WorkflowNode.QUEUED, submission__jobs__state=Job.RUNNING
        )
        .values("workflow_id")
        .annotate(n=Count("id", distinct=True))
        .order_by()
    )
    for wid, n in running.values_list("workflow_id", "n"):
        out.setdefault(wid, empty_node_counts())["running"] = n
    return out


def record_workflow(
    *,
    owner: Any,
    project: Any,
    name: str,
    executor: str,
    vetted: Any,  # orchestration.batch.dag.VettedWorkflow
    files: dict[str, str],
    rescue_of: Workflow | None = None,
    done_names: set[str] | None = None,
) -> Workflow:
    """Write the workflow, one submission per node with its jobs (unsent), and the nodes; all or nothing.

    Nodes named in `done_names` (a rescue run's finished nodes) and nodes marked DONE in the DAG
    are recorded done and never run.
    """
    done_names = done_names or set()
    nodes = vetted.nodes
    index_of = {v.node.name: i for i, v in enumerate(nodes)}
    with transaction.atomic():
        wf = Workflow.objects.create(
            owner=owner,
            project=project,
            rescue_of=rescue_of,
            name=name,
            executor=executor,
            dag_text=vetted.dag.text,
            files=files,
            maxjobs=dict(vetted.dag.maxjobs),
            num_nodes=len(nodes),
        )
        subs = []
        for v in nodes:
            p = v.parsed
            subs.append(
                Submission(
                    owner=owner,
                    project=project,
                    workflow=wf,
                    name=f"{name}: {v.node.name}"[:64],
                    executor=executor,
                    state=Submission.RECORDED,
                    script_name=p.executable,
                    script=v.wrapper or files.get(p.executable, ""),
                    submit_text=files.get(v.node.submit_file, ""),
                    body=p.body,
                    queue_vars=p.queue_vars,
                    transfer_input_files=p.transfer_input_files,
                    request_cpus=p.request_cpus,
                    request_memory_mb=p.request_memory_mb,
                    request_disk_mb=p.request_disk_mb,
                    num_jobs=len(p.jobs),
                )
            )
        Submission.objects.bulk_create(subs, batch_size=1000)
        jobs = []
        for v, sub in zip(nodes, subs, strict=True):
            for i, job in enumerate(v.parsed.jobs):
                jobs.append(
                    Job(
                        submission=sub,
                        index=i,
                        proc=job.proc,
                        item=job.item[:255],
                        argv=job.argv,
                        item_vars=job.item_vars,
                        output=job.output,
                        error=job.error,
                        log=job.log,
                        output_files=list(job.output_files),
                        priority=v.node.priority,
                    )
                )
        Job.objects.bulk_create(jobs, batch_size=1000)
        rows = []
        for i, (v, sub) in enumerate(zip(nodes, subs, strict=True)):
            n = v.node
            done = n.done or n.name in done_names
            scripts = {
                kind: {"name": s.name, "args": list(s.args)}
                for kind, s in (("pre", n.pre), ("post", n.post))
                if s is not None
            }
            rows.append(
                WorkflowNode(
                    workflow=wf,
                    index=i,
                    name=n.name,
                    stage=n.submit_file[:100],
                    state=WorkflowNode.DONE if done else WorkflowNode.WAITING,
                    submission=sub,
                    parents=[index_of[p] for p in n.parents],
                    children=[index_of[c] for c in n.children],
                    final=n.final,
                    retries=n.retries,
                    unless_exit=n.unless_exit,
                    category=n.category,
                    priority=n.priority,
                    abort_exit=n.abort_exit,
                    abort_return=n.abort_return,
                    vars=n.vars,
                    scripts=scripts,
                    inputs=v.files,
                    note="done in an earlier run"
                    if n.name in done_names
                    else ("marked DONE" if n.done else ""),
                )
            )
        WorkflowNode.objects.bulk_create(rows, batch_size=1000)
        done_subs = [r.submission_id for r in rows if r.state == WorkflowNode.DONE and r.submission_id]
        if done_subs:
            Submission.objects.filter(pk__in=done_subs).update(
                state=Submission.FINISHED, finished=timezone.now()
            )
    return wf


def active_workflow_q() -> Q:
    return Q(state__in=Workflow.ACTIVE_STATES)
