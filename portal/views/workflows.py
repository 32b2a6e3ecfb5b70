"""Workflow pages: a DAG upload, the stages form, a workflow's graph and nodes, control and rescue.

Views read the database; starting, holding, releasing and removing a workflow are Operations
sent on commit. A node's page shows its .out, .err and event log with the batch job page's file
view (portal/job_files.py): on the local workers from its job's directory, on an HTCondor pool from
the workflow's staging directory once DAGMan's spool directory has been retrieved.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from orchestration.batch.base import BatchValidationError
from orchestration.batch.dag import WRAPPER_PREFIX, check_workflow
from orchestration.operations import start_operation
from orchestration.tasks.workflow_condor import dag_dir
from portal import workflow_graph
from portal.forms.workflows import DagUploadForm, StagesForm, _WorkflowForm
from portal.job_files import files_context
from portal.models import Job, Operation, Workflow, WorkflowNode
from portal.models.batch import job_dir
from portal.models.workflows import NODE_STATES, empty_node_counts, node_counts_for, record_workflow

NODES_PER_PAGE = 100
DAG_LINES_SHOWN = 200
CONTROL_ACTIONS = {"hold": "Hold", "release": "Release", "remove": "Remove"}


def get_workflow_for_user(request: HttpRequest, pk: int) -> Workflow:
    return get_object_or_404(Workflow.objects.for_user(request.user), pk=pk)


def _start(
    request: HttpRequest, form: _WorkflowForm, rescue_of: Workflow | None = None, done: set[str] | None = None
) -> Workflow:
    assert form.vetted is not None
    with transaction.atomic():
        wf = record_workflow(
            owner=request.user,
            project=rescue_of.project if rescue_of else request.project,  # type: ignore[attr-defined]
            name=form.cleaned_data["name"],
            executor=form.cleaned_data["executor"],
            vetted=form.vetted,
            files=form.workflow_files,
            rescue_of=rescue_of,
            done_names=done,
        )
        start_operation(
            owner=request.user,
            project=wf.project,
            kind="workflow_submit",
            title=f"Start workflow {wf.name}",
            target=f"workflow:{wf.pk}",
            params={"workflow": wf.pk},
        )
    return wf


@login_required
@require_http_methods(["GET", "POST"])
def workflow_upload(request: HttpRequest) -> HttpResponse:
    form = DagUploadForm(request.POST or None, request.FILES or None, uploads=request.FILES.getlist("inputs"))
    if request.method == "POST" and form.is_valid() and form.vetted is not None:
        wf = _start(request, form)
        messages.success(request, f"Workflow {wf.name} recorded: {wf.num_nodes} nodes.")
        return redirect("workflow", pk=wf.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "workflows/upload.html", {"form": form}, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def workflow_new(request: HttpRequest) -> HttpResponse:
    """The stages form; "Show the DAG" renders what it will submit, "Submit" records and starts it."""
    form = StagesForm(request.POST or None)
    valid = request.method == "POST" and form.is_valid() and form.vetted is not None
    if valid and request.POST.get("action") == "submit":
        wf = _start(request, form)
        messages.success(request, f"Workflow {wf.name} recorded: {wf.num_nodes} nodes.")
        return redirect("workflow", pk=wf.pk)
    preview = None
    if valid and form.vetted is not None:
        index_of = {v.node.name: i for i, v in enumerate(form.vetted.nodes)}
        rows = [
            (
                i,
                v.node.name,
                v.node.submit_file,
                "waiting",
                [index_of[p] for p in v.node.parents],
                v.node.final,
            )
            for i, v in enumerate(form.vetted.nodes)
        ]
        preview = {
            "dag": form.dag_text,
            "graph": workflow_graph.build(rows, set()),
            "nodes": len(rows),
            "legend": legend(None),
        }
    status = 400 if request.method == "POST" and not valid else 200
    return render(request, "workflows/new.html", {"form": form, "preview": preview}, status=status)


def _node_rows(wf: Workflow) -> list[workflow_graph.NodeRow]:
    return [
        (i, name, stage, state, parents, final)
        for i, name, stage, state, parents, final in WorkflowNode.objects.filter(workflow=wf)
        .order_by("index")
        .values_list("index", "name", "stage", "state", "parents", "final")
    ]


def _running(wf: Workflow) -> set[int]:
    return set(
        WorkflowNode.objects.filter(
            workflow=wf, state=WorkflowNode.QUEUED, submission__jobs__state=Job.RUNNING
        )
        .values_list("index", flat=True)
        .distinct()
    )


def legend(counts: dict[str, int] | None) -> list[tuple[str, str, int | None]]:
    """(state, colour, count) for the graph's key; queued nodes with a running job count as running."""
    out: list[tuple[str, str, int | None]] = []
    for state, colour in workflow_graph.STATE_COLOURS.items():
        if counts is None:
            out.append((state, colour, None))
        elif state == "queued":
            out.append((state, colour, counts.get("queued", 0) - counts.get("running", 0)))
        else:
            out.append((state, colour, counts.get(state, 0)))
    return out


def _graph(wf: Workflow, running: set[int]) -> workflow_graph.Graph:
    if wf.num_nodes <= workflow_graph.COLLAPSE_AT:
        return workflow_graph.build(_node_rows(wf), running)
    groups: dict[workflow_graph.Group, dict[str, int]] = {}
    rows = WorkflowNode.objects.filter(workflow=wf).values("layer", "stage", "state").annotate(n=Count("id"))
    for row in rows.order_by():
        groups.setdefault((row["layer"], row["stage"]), {})[row["state"]] = row["n"]
    busy = (
        WorkflowNode.objects.filter(workflow=wf, index__in=list(running))
        .values("layer", "stage")
        .annotate(n=Count("id"))
        .order_by()
    )
    for layer, stage, n in busy.values_list("layer", "stage", "n"):
        counts = groups[(layer, stage)]
        counts["queued"] = counts.get("queued", 0) - n
        counts["running"] = n
        if not counts["queued"]:
            del counts["queued"]
    links = [((a[0], a[1]), (b[0], b[1])) for a, b in wf.stage_links]
    return workflow_graph.collapsed(groups, links)


@login_required
@require_GET
def workflow_detail(request: HttpRequest, pk: int) -> HttpResponse:
    wf = get_workflow_for_user(request, pk)
    counts = node_counts_for([wf.pk]).get(wf.pk) or empty_node_counts()
    running = _running(wf)
    graph = _graph(wf, running)
    state = request.GET.get("state", "")
    nodes = WorkflowNode.objects.filter(workflow=wf).order_by("index")
    if state in NODE_STATES:
        nodes = nodes.filter(state=state)
    page = Paginator(
        nodes.only("index", "name", "stage", "state", "attempts", "exit_code", "note", "submission_id"),
        NODES_PER_PAGE,
    ).get_page(request.GET.get("page"))
    shown = list(page.object_list)
    for n in shown:
        n.shown_state = "running" if n.index in running else n.state  # type: ignore[attr-defined]
    live = wf.is_active or (wf.state in (Workflow.ABORTED, Workflow.REMOVED) and wf.finished is None)
    ctx = {
        "wf": wf,
        "counts": counts,
        "graph": graph,
        "colours": workflow_graph.STATE_COLOURS,
        "legend": legend(counts),
        "actions": list(CONTROL_ACTIONS.items()) if wf.is_active else [],  # only where they apply
        "page": page,
        "nodes": shown,
        "state": state,
        "states": WorkflowNode.STATES,
        "polling": live,
        "query": request.GET.urlencode(),
        "operations": Operation.objects.for_user(request.user).filter(target=f"workflow:{wf.pk}")[:5],
        "dag_head": "\n".join(wf.dag_text.split("\n", DAG_LINES_SHOWN)[:DAG_LINES_SHOWN]),
        "dag_cut": wf.dag_text.count("\n") > DAG_LINES_SHOWN,
        "finished_ok": not live and counts.get("done") == counts.get("total"),
    }
    template = "workflows/_live.html" if request.headers.get("HX-Request") else "workflows/detail.html"
    return render(request, template, ctx)


POOL_KEEPS_FILES = (
    "On the HTCondor pool the nodes' files stay with DAGMan's job until the workflow ends; "
    "they come back here then."
)


@login_required
@require_GET
def workflow_node(request: HttpRequest, pk: int, index: int) -> HttpResponse:
    """One node: its state, and its first job's .out, .err and event log (as a batch job's page)."""
    wf = get_workflow_for_user(request, pk)
    node = get_object_or_404(WorkflowNode, workflow=wf, index=index)
    row = node.spec["job"]["jobs"][0]  # proc, item, argv, output, error, log, ...
    output, error, log = str(row[3]), str(row[4]), str(row[5])
    job = None
    not_back = ""
    if wf.executor == "htcondor":
        cluster, proc = node.spec.get("cluster"), 0
        back = wf.finished is not None and wf.dagman_cluster is not None  # DAGMan's spool retrieved
        directory = dag_dir(wf) if back else None
        started = node.state not in (WorkflowNode.WAITING, WorkflowNode.READY, WorkflowNode.NOT_RUN)
        not_back = POOL_KEEPS_FILES if not back and started and wf.dagman_cluster else ""
    else:
        job = (
            Job.objects.filter(submission_id=node.submission_id, index=0).first()
            if node.submission_id
            else None
        )
        directory = job_dir(job) if job is not None else None
        cluster, proc = (job.cluster, job.proc) if job is not None else (None, 0)
        if job is not None:
            output, error, log = job.output, job.error, job.log
    live = wf.is_active and node.state not in WorkflowNode.FINAL_STATES
    ctx = {
        **files_context(directory, output, error, log, cluster, proc),
        "wf": wf,
        "node": node,
        "job": job,
        "not_back": not_back,
        "polling": live,
        "colours": workflow_graph.STATE_COLOURS,
    }
    template = "workflows/_node_live.html" if request.headers.get("HX-Request") else "workflows/node.html"
    return render(request, template, ctx)


@login_required
@require_POST
def workflow_control(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    wf = get_workflow_for_user(request, pk)
    if action not in CONTROL_ACTIONS:
        raise Http404("no such action")
    if not wf.is_active:
        messages.info(request, f"Workflow {wf.name} has ended; nothing to {action}.")
        return redirect("workflow", pk=wf.pk)
    with transaction.atomic():
        start_operation(
            owner=request.user,
            project=wf.project,
            kind="workflow_control",
            title=f"{CONTROL_ACTIONS[action]} workflow {wf.name}",
            target=f"workflow:{wf.pk}",
            params={"workflow": wf.pk, "action": action},
        )
    messages.success(request, f"{CONTROL_ACTIONS[action]} of workflow {wf.name} is on its way.")
    return redirect("workflow", pk=wf.pk)


class _RescueForm(_WorkflowForm):
    pass


def _editable(wf: Workflow) -> list[str]:
    """The scripts a rescue may change (the uploaded files other than submit files)."""
    stages = set(wf.nodes.values_list("stage", flat=True).distinct())
    return [name for name in sorted(wf.files) if name not in stages and not name.startswith(WRAPPER_PREFIX)]


@login_required
@require_http_methods(["GET", "POST"])
def workflow_rescue(request: HttpRequest, pk: int) -> HttpResponse:
    """Run what did not finish: a new workflow from the same DAG whose done nodes are marked done,
    optionally with edited scripts (as DAGMan's rescue DAG, which marks finished nodes DONE)."""
    wf = get_workflow_for_user(request, pk)
    editable = _editable(wf)
    done = set(wf.nodes.filter(state=WorkflowNode.DONE).values_list("name", flat=True))
    initial = {"name": f"{wf.name}-rescue"[:40], "executor": wf.executor}
    form = _RescueForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        files = dict(wf.files)
        for name in editable:
            if f"file:{name}" in request.POST:
                files[name] = request.POST[f"file:{name}"].replace("\r\n", "\n")
        try:
            form.vetted = check_workflow(wf.dag_text, files)
            form.workflow_files = files
        except BatchValidationError as exc:
            for problem in exc.problems:
                form.add_error(None, problem)
        if form.vetted is not None:
            if wf.is_active:
                form.add_error(None, "The workflow still runs: remove it first, or wait for it to end.")
            else:
                new = _start(request, form, rescue_of=wf, done=done)
                messages.success(request, f"Rescue run {new.name}: {wf.num_nodes - len(done)} nodes to run.")
                return redirect("workflow", pk=new.pk)
    status = 400 if request.method == "POST" else 200
    scripts = [(name, request.POST.get(f"file:{name}", wf.files[name])) for name in editable]
    return render(
        request,
        "workflows/rescue.html",
        {"wf": wf, "form": form, "scripts": scripts, "done": len(done)},
        status=status,
    )


def workflows_with_counts(user: Any, limit: int = 10) -> list[Workflow]:
    """The user's latest workflows with node counts, for the batch queue page."""
    rows = list(Workflow.objects.for_user(user)[:limit])
    counts = node_counts_for([w.pk for w in rows])
    for w in rows:
        c = counts.get(w.pk) or w.node_counts()
        total = c["total"] or 1
        w.counts = c  # type: ignore[attr-defined]
        w.bars = [(s, round(100 * c[s] / total, 2)) for s in ("done", "failed", "notrun", "removed")]  # type: ignore[attr-defined]
    return rows
