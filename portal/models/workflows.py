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
    stage_links = models.JSONField(
        default=list, help_text="[[layer, stage], [layer, stage]] pairs: the graph drawn per stage"
    )
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
    layer = models.PositiveIntegerField(default=0, help_text="0 for roots, one below the deepest parent")
    state = models.CharField(max_length=8, choices=STATES, default=WAITING)
    submission = models.OneToOneField(
        Submission, null=True, blank=True, on_delete=models.SET_NULL, related_name="workflow_node"
    )
    parents = models.JSONField(default=list, help_text="indices of the parent nodes")
    children = models.JSONField(default=list, help_text="indices of the child nodes")
    final = models.BooleanField(default=False, help_text="DAGMan's FINAL node: runs last, whatever happened")
    attempts = models.PositiveSmallIntegerField(default=0, help_text="runs started")
    category = models.CharField(max_length=64, blank=True)
    priority = models.IntegerField(default=0)
    exit_code = models.IntegerField(null=True, blank=True)
    note = models.CharField(max_length=500, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    spec = models.JSONField(
        default=dict,
        help_text="RETRY, UNLESS-EXIT, ABORT-DAG-ON, VARS, scripts, input files and the vetted job "
        "(its submission is made from it when the node is sent)",
    )

    class Meta:
        ordering = ["workflow", "index"]
        constraints = [models.UniqueConstraint(fields=["workflow", "index"], name="unique_node_index")]
        indexes = [models.Index(fields=["workflow", "state"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.state})"

    @property
    def retries(self) -> int:
        return int(self.spec.get("retries", 0))

    @property
    def unless_exit(self) -> int | None:
        return self.spec.get("unless_exit")

    @property
    def abort_exit(self) -> int | None:
        return self.spec.get("abort_exit")

    @property
    def inputs(self) -> list[str]:
        return list(self.spec.get("inputs", []))


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


def node_layers(nodes: list[tuple[list[int], bool]]) -> list[int]:
    """Each node's layer from (parent indices, final) in topological order: roots 0, a child one below
    its deepest parent, the FINAL node below all."""
    out: list[int] = []
    for parents, final in nodes:
        out.append(0 if final else 1 + max((out[p] for p in parents), default=-1))
    bottom = max(out, default=-1) + 1
    return [bottom if final else d for d, (_, final) in zip(out, nodes, strict=True)]


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
    """Write the workflow and its nodes, each with its vetted job; all or nothing.

    A node's batch submission and jobs are made when the node is sent (`make_node_submission`),
    so recording is one row per node. Nodes named in `done_names` (a rescue run's finished
    nodes) and nodes marked DONE in the DAG are recorded done and never run.
    """
    done_names = done_names or set()
    nodes = vetted.nodes
    index_of = {v.node.name: i for i, v in enumerate(nodes)}
    layer = node_layers([([index_of[p] for p in v.node.parents], v.node.final) for v in nodes])
    links = sorted(
        {
            ((layer[index_of[p]], nodes[index_of[p]].node.submit_file), (layer[i], v.node.submit_file))
            for i, v in enumerate(nodes)
            for p in v.node.parents
        }
    )
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
            stage_links=[[list(a), list(b)] for a, b in links if a != b],
        )
        rows = []
        for i, v in enumerate(nodes):
            n, p = v.node, v.parsed
            done = n.done or n.name in done_names
            spec = {
                "retries": n.retries,
                "unless_exit": n.unless_exit,
                "abort_exit": n.abort_exit,
                "abort_return": n.abort_return,
                "vars": n.vars,
                "scripts": {
                    kind: {"name": s.name, "args": list(s.args)}
                    for kind, s in (("pre", n.pre), ("post", n.post))
                    if s is not None
                },
                "inputs": v.files,
                "submit_file": n.submit_file,
                "job": {
                    "executable": p.executable,
                    "wrapper": v.wrapper,  # the executable is otherwise one of the files, by name
                    "body": p.body,
                    "queue_vars": p.queue_vars,
                    "transfer_input_files": p.transfer_input_files,
                    "request_cpus": p.request_cpus,
                    "request_memory_mb": p.request_memory_mb,
                    "request_disk_mb": p.request_disk_mb,
                    "jobs": [
                        [j.proc, j.item, j.argv, j.output, j.error, j.log, j.item_vars, j.output_files]
                        for j in p.jobs
                    ],
                },
            }
            rows.append(
                WorkflowNode(
                    workflow=wf,
                    index=i,
                    name=n.name,
                    stage=n.submit_file[:100],
                    layer=layer[i],
                    state=WorkflowNode.DONE if done else WorkflowNode.WAITING,
                    parents=[index_of[x] for x in n.parents],
                    children=[index_of[x] for x in n.children],
                    final=n.final,
                    category=n.category,
                    priority=n.priority,
                    note="done in an earlier run"
                    if n.name in done_names
                    else ("marked DONE" if n.done else ""),
                    spec=spec,
                )
            )
        WorkflowNode.objects.bulk_create(rows, batch_size=2000)
    return wf


def node_script(wf: Workflow, node: WorkflowNode) -> str:
    """What the node's job runs: its wrapper (PRE and POST scripts), or its executable as uploaded."""
    job = node.spec["job"]
    return str(job.get("wrapper") or wf.files.get(job["executable"], ""))


def make_node_submission(
    node: WorkflowNode,
    jobs: dict[str, Any] | None = None,
    submission: dict[str, Any] | None = None,
    attempts: int | None = None,
) -> Submission:
    """The node's batch submission and its jobs, made once, when the node is first sent: active, with
    `jobs` (their cluster and state) and `submission` fields once the executor has them."""
    if node.submission_id is not None:
        return Submission.objects.get(pk=node.submission_id)
    sent = jobs or {}
    wf = node.workflow
    job = node.spec["job"]
    with transaction.atomic():
        sub = Submission.objects.create(
            owner_id=wf.owner_id,
            project_id=wf.project_id,
            workflow=wf,
            name=f"{wf.name}: {node.name}"[:64],
            executor=wf.executor,
            script_name=job["executable"],
            script=node_script(wf, node),
            submit_text=wf.files.get(node.spec.get("submit_file", ""), ""),
            body=job["body"],
            queue_vars=job["queue_vars"],
            transfer_input_files=job["transfer_input_files"],
            request_cpus=job["request_cpus"],
            request_memory_mb=job["request_memory_mb"],
            request_disk_mb=job["request_disk_mb"],
            num_jobs=len(job["jobs"]),
            state=Submission.ACTIVE if sent else Submission.RECORDED,
            **(submission or {}),
        )
        Job.objects.bulk_create(
            [
                Job(
                    submission=sub,
                    index=i,
                    proc=proc,
                    item=str(item)[:255],
                    argv=argv,
                    item_vars=item_vars,
                    output=output,
                    error=error,
                    log=log,
                    output_files=output_files,
                    priority=node.priority,
                    **sent,
                )
                for i, (proc, item, argv, output, error, log, item_vars, output_files) in enumerate(
                    job["jobs"]
                )
            ]
        )
        linked = {"submission": sub, **({"attempts": attempts} if attempts is not None else {})}
        if not WorkflowNode.objects.filter(pk=node.pk, submission=None).update(**linked):
            transaction.set_rollback(True)  # another sender made it first
            return Submission.objects.get(workflow_node__pk=node.pk)
    node.submission = sub
    node.made_now = True  # type: ignore[attr-defined]
    return sub


def active_workflow_q() -> Q:
    return Q(state__in=Workflow.ACTIVE_STATES)
