"""Batch pages: submit (form or upload), the queue, a submission's jobs, a job's files and log.

Views read the database (and, for a job's files, the local files the executor
wrote); every action that reaches the executor is an Operation sent on commit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Count, Q
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from orchestration.backends import sandbox_config
from orchestration.batch.base import ParsedJob, ParsedSubmit
from orchestration.batch.sandbox import TRUSTED
from orchestration.batch.sandbox import describe as describe_sandbox
from orchestration.batch.submit import render as render_submit
from orchestration.operations import start_operation
from portal.forms.batch import BatchForm, BatchPlan, ResubmitForm, UploadForm, proxy_problem
from portal.http import posted_ids
from portal.job_files import file_in, files_context
from portal.models import Job, Operation, Submission
from portal.models.batch import (
    CONTROL_APPLIES,
    STATE_NAMES,
    counts_for,
    empty_counts,
    job_dir,
    record_submission,
    summary_text,
)
from portal.views.workflows import workflows_with_counts

SUBMISSIONS_PER_PAGE = 15
JOBS_PER_PAGE = 50
FILE_KINDS = {"out": "output", "err": "error", "log": "log"}


def get_submission_for_user(request: HttpRequest, pk: int) -> Submission:
    return get_object_or_404(Submission.objects.for_user(request.user), pk=pk)


def get_job_for_user(request: HttpRequest, pk: int) -> Job:
    return get_object_or_404(Job.objects.for_user(request.user).select_related("submission"), pk=pk)


def _dispatch(sub: Submission, part: str, title: str) -> Operation:
    return start_operation(
        owner=sub.owner,
        project=sub.project,
        kind="batch_submit",
        title=title,
        target=f"batch:{sub.pk}",
        params={"submission": sub.pk, "part": part},
    )


def _record(request: HttpRequest, plan: BatchPlan, parent: Submission | None = None) -> Submission:
    with transaction.atomic():
        sub = record_submission(
            owner=request.user,
            # A resubmission stays in its original's project, whatever project is current now.
            project=parent.project if parent is not None else request.project,  # type: ignore[attr-defined]
            name=plan.name,
            executor=plan.executor,
            script_name=plan.script_name,
            script=plan.script,
            submit_text=plan.submit_text,
            parsed=plan.parsed,
            test_first=plan.test_first,
            image=plan.image,
            flavor=plan.flavor,
            parent=parent,
            output_folder=plan.output_folder,
        )
        first = sub.test_first
        _dispatch(
            sub, "first" if first else "all", f"Submit batch {sub.name}" + (" (test job)" if first else "")
        )
    return sub


# ---------------------------------------------------------------------------- submitting


@login_required
@require_http_methods(["GET", "POST"])
def batch_new(request: HttpRequest) -> HttpResponse:
    project = request.project  # type: ignore[attr-defined]
    form = BatchForm(request.POST or None, request.FILES or None, project=project, user=request.user)
    if request.method == "POST" and form.is_valid() and form.plan is not None:
        sub = _record(request, form.plan)
        messages.success(request, f"Batch {sub.name} recorded: {sub.num_jobs} jobs are on their way.")
        return redirect("batch_submission", pk=sub.pk)
    status = 400 if request.method == "POST" else 200
    context = {"form": form, "preview": _preview_context(form), "sandbox_mode": _sandbox_mode()}
    return render(request, "batch/new.html", context, status=status)


def _sandbox_mode() -> dict[str, Any] | None:
    """The line under the executor choice saying how local jobs are confined (None without local jobs)."""
    if "local" not in settings.BATCH_EXECUTORS:
        return None
    config = sandbox_config()
    return {"trusted": config.mode == TRUSTED, "text": describe_sandbox(config)}


def _preview_context(form: BatchForm) -> dict[str, Any]:
    if not form.is_bound:
        return {"bound": False}
    problems = [str(e) for errors in form.errors.values() for e in errors]
    plan = form.plan if not problems else None
    return {
        "bound": True,
        "problems": problems,
        "plan": plan,
        "jobs": plan.parsed.jobs[:3] if plan else [],
        "num_jobs": len(plan.parsed.jobs) if plan else 0,
    }


@login_required
@require_POST
def batch_preview(request: HttpRequest) -> HttpResponse:
    """The htmx partial: the submit description the portal will send, or every problem found."""
    form = BatchForm(
        request.POST,
        request.FILES or None,
        project=request.project,  # type: ignore[attr-defined]
        user=request.user,
    )
    form.is_valid()
    return render(request, "batch/_preview.html", {"preview": _preview_context(form)})


@login_required
@require_http_methods(["GET", "POST"])
def batch_upload(request: HttpRequest) -> HttpResponse:
    project = request.project  # type: ignore[attr-defined]
    form = UploadForm(request.POST or None, request.FILES or None, project=project, user=request.user)
    if request.method == "POST" and form.is_valid() and form.plan is not None:
        sub = _record(request, form.plan)
        messages.success(request, f"Batch {sub.name} recorded from your submit file: {sub.num_jobs} jobs.")
        return redirect("batch_submission", pk=sub.pk)
    status = 400 if request.method == "POST" else 200
    return render(
        request, "batch/upload.html", {"form": form, "sandbox_mode": _sandbox_mode()}, status=status
    )


# ---------------------------------------------------------------------------- watching


def _pool_summary(user: Any) -> dict[str, Any]:
    """Jobs in the queue: like condor_q -all (owners and counts only) for staff, or for everyone when
    BATCH_QUEUE_ALL_USERS is on; otherwise the user's own counts, so nobody learns who else computes."""
    everyone = user.is_staff or settings.BATCH_QUEUE_ALL_USERS
    jobs = Job.objects.filter(state__in=[Job.IDLE, Job.RUNNING, Job.HELD])
    if not everyone:
        jobs = jobs.filter(submission__owner=user)
    rows = jobs.values("submission__owner__username", "state").annotate(n=Count("id")).order_by()
    owners: dict[str, dict[str, int]] = {}
    for row in rows:
        counts = owners.setdefault(row["submission__owner__username"], {"idle": 0, "running": 0, "held": 0})
        counts[row["state"]] = row["n"]
    totals = {s: sum(c[s] for c in owners.values()) for s in ("idle", "running", "held")}
    return {"owners": sorted(owners.items()), "totals": totals, "users": len(owners), "everyone": everyone}


def _with_counts(subs: list[Submission]) -> list[Submission]:
    counts = counts_for([s.pk for s in subs])
    for s in subs:
        c = counts.get(s.pk, empty_counts())
        total = c["total"] or 1
        s.counts = c  # type: ignore[attr-defined]
        s.bars = [  # type: ignore[attr-defined]
            (state, round(100 * c[state] / total, 2))
            for state in ("done", "nooutput", "failed", "removed", "held", "running")
        ]
        s.live = s.is_active or c["idle"] + c["running"] > 0  # type: ignore[attr-defined]
    return subs


@login_required
@require_GET
def batch_queue(request: HttpRequest) -> HttpResponse:
    show = request.GET.get("show", "all")
    q = request.GET.get("q", "").strip()
    subs = Submission.objects.for_user(request.user).batches().select_related("parent")
    if show == "active":
        subs = subs.filter(Q(state__in=Submission.ACTIVE_STATES) | Q(state=Submission.PAUSED))
    elif show == "finished":
        subs = subs.filter(state__in=[Submission.FINISHED, Submission.FAILED])
    if q:
        subs = subs.filter(name__icontains=q)
    page = Paginator(subs, SUBMISSIONS_PER_PAGE).get_page(request.GET.get("page"))
    rows = _with_counts(list(page.object_list))
    ctx = {
        "page": page,
        "submissions": rows,
        "show": show,
        "q": q,
        "pool": _pool_summary(request.user),
        "workflows": workflows_with_counts(request.user),
        "polling": any(s.live for s in rows),  # type: ignore[attr-defined]
        "query": request.GET.urlencode(),
    }
    template = "batch/_queue.html" if request.headers.get("HX-Request") else "batch/queue.html"
    return render(request, template, ctx)


@login_required
@require_GET
def batch_submission(request: HttpRequest, pk: int) -> HttpResponse:
    sub = get_submission_for_user(request, pk)
    state = request.GET.get("state", "")
    q = request.GET.get("q", "").strip()
    jobs = sub.jobs.all()
    if state in STATE_NAMES:
        jobs = jobs.filter(state=state)
    if q:
        jobs = jobs.filter(item__icontains=q)
    page = Paginator(jobs, JOBS_PER_PAGE).get_page(request.GET.get("page"))
    _with_counts([sub])
    ctx = {
        "sub": sub,
        "page": page,
        "jobs": list(page.object_list),
        "state": state,
        "q": q,
        "states": Job.STATES,
        "summary_text": summary_text(sub.counts),  # type: ignore[attr-defined]
        "polling": sub.live,  # type: ignore[attr-defined]
        "operations": Operation.objects.for_user(request.user).filter(target=f"batch:{sub.pk}")[:5],
        "query": request.GET.urlencode(),
    }
    template = "batch/_submission_live.html" if request.headers.get("HX-Request") else "batch/submission.html"
    return render(request, template, ctx)


def _file_path(job: Job, kind: str) -> Path | None:
    return file_in(job_dir(job), getattr(job, FILE_KINDS[kind]))


@login_required
@require_GET
def batch_job(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_job_for_user(request, pk)
    files = files_context(job_dir(job), job.output, job.error, job.log, job.cluster, job.proc)
    events = files["events"]
    from_queue = False
    if not events and job.submission.executor == "htcondor" and job.started_at and not job.retrieved:
        # The pool keeps the event log until the job ends; until then, what the queue says.
        from_queue = True
        events = [
            {
                "kind": "execute",
                "code": 1,
                "when": job.started_at,
                "host": job.host,
                "reason": "",
                "detail": "",
            }
        ]
    remote_pending = job.submission.executor == "htcondor" and bool(job.cluster) and not job.retrieved
    ctx = {
        **files,
        "job": job,
        "sub": job.submission,
        "events_from_queue": from_queue,
        "events": events,
        "not_back": "Not back from the pool yet." if remote_pending else "",
        "polling": job.state in (Job.UNSENT, Job.IDLE, Job.RUNNING)
        or (job.state in (Job.DONE, Job.NO_OUTPUT, Job.FAILED) and job.outputs_state == Job.OUTPUTS_PENDING),
    }
    template = "batch/_job_live.html" if request.headers.get("HX-Request") else "batch/job.html"
    return render(request, template, ctx)


@login_required
@require_GET
def batch_job_file(request: HttpRequest, pk: int, kind: str) -> FileResponse:
    """Download a job's .out, .err or .log; files are found from the job, never from the request."""
    job = get_job_for_user(request, pk)
    if kind not in FILE_KINDS:
        raise Http404("No such file kind.")
    path = _file_path(job, kind)
    if path is None or not path.is_file():
        raise Http404("This file does not exist yet.")
    return FileResponse(open(path, "rb"), as_attachment=True, filename=path.name, content_type="text/plain")  # noqa: SIM115


# ---------------------------------------------------------------------------- acting


def _selected_jobs(request: HttpRequest, sub: Submission) -> list[int]:
    wanted = posted_ids(request, "jobs")
    return list(sub.jobs.filter(pk__in=wanted).values_list("pk", flat=True)) if wanted else []


@login_required
@require_POST
def batch_control(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """Hold, release or remove a submission's jobs (all of them, or those ticked)."""
    sub = get_submission_for_user(request, pk)
    if action not in ("hold", "release", "remove"):
        raise Http404("No such action.")
    selected = _selected_jobs(request, sub)
    what = f"{len(selected)} job{'s' if len(selected) != 1 else ''}" if selected else "all jobs"
    applies_to = CONTROL_APPLIES[action]
    nothing = {
        "hold": "no job is waiting or running",
        "release": "no job is held",
        "remove": "every job has already ended",
    }[action]
    jobs = sub.jobs.filter(pk__in=selected) if selected else sub.jobs.all()
    if not jobs.filter(state__in=applies_to).exists():
        messages.info(request, f"Nothing to {action}: {nothing}.")
        return redirect("batch_submission", pk=sub.pk)
    with transaction.atomic():
        start_operation(
            owner=request.user,
            project=sub.project,
            kind="batch_control",
            title=f"{action.capitalize()} {what} of batch {sub.name}",
            target=f"batch:{sub.pk}",
            params={"submission": sub.pk, "action": action, "jobs": selected},
        )
    messages.info(request, f"{action.capitalize()} requested for {what}.")
    return redirect("batch_submission", pk=sub.pk)


@login_required
@require_POST
def batch_run_rest(request: HttpRequest, pk: int) -> HttpResponse:
    """After the test job: send the remaining jobs."""
    sub = get_submission_for_user(request, pk)
    with transaction.atomic():
        claimed = Submission.objects.filter(pk=sub.pk, state=Submission.PAUSED).update(
            state=Submission.SUBMITTING
        )
        if not claimed:
            messages.error(request, "The remaining jobs can be started once the test job has finished.")
            return redirect("batch_submission", pk=sub.pk)
        _dispatch(sub, "rest", f"Submit the remaining jobs of batch {sub.name}")
    messages.success(request, "The remaining jobs are on their way.")
    return redirect("batch_submission", pk=sub.pk)


def _jobs_to_resubmit(request: HttpRequest, sub: Submission) -> list[Job]:
    selected = _selected_jobs(request, sub)
    jobs = (
        sub.jobs.filter(pk__in=selected)
        if selected
        else sub.jobs.filter(state__in=[Job.FAILED, Job.NO_OUTPUT])
    )
    return list(jobs.order_by("index"))


def _resubmit(request: HttpRequest, sub: Submission, old: list[Job], script: str) -> HttpResponse:
    """Record the jobs ``old`` again as a new submission linked to ``sub``, running ``script``."""
    problem = proxy_problem(request.user)
    if problem:
        messages.error(request, problem)
        return redirect("batch_submission", pk=sub.pk)
    parsed_jobs = [
        ParsedJob(i, j.item, list(j.argv), j.output, j.error, j.log, dict(j.item_vars), list(j.output_files))
        for i, j in enumerate(old)
    ]
    text = sub.submit_text
    if len(sub.queue_vars) == 1 and all(j.item for j in old):
        text = render_submit(
            list(sub.body.items()), sub.queue_vars[0], [j.item for j in old], f"resubmission of {sub.name}"
        )
    parsed = ParsedSubmit(
        text,
        sub.script_name,
        parsed_jobs,
        sub.request_cpus,
        sub.request_memory_mb,
        sub.request_disk_mb,
        list(sub.transfer_input_files),
        dict(sub.body),
        list(sub.queue_vars),
    )
    plan = BatchPlan(
        sub.name,
        sub.executor,
        sub.script_name,
        script,
        text,
        parsed,
        False,
        None,
        None,
        sub.output_folder,
    )
    new = _record(request, plan, parent=sub)
    Submission.objects.filter(pk=new.pk).update(
        image_name=sub.image_name, image_id=sub.image_id, flavor_name=sub.flavor_name
    )
    edited = " with the edited script" if script != sub.script else ""
    messages.success(
        request, f"Resubmitted {len(old)} job{'s' if len(old) != 1 else ''} of {sub.name}{edited}."
    )
    return redirect("batch_submission", pk=new.pk)


NOTHING_TO_RESUBMIT = "There are no failed jobs to resubmit; tick the jobs you want to run again."


@login_required
@require_POST
def batch_resubmit(request: HttpRequest, pk: int) -> HttpResponse:
    """Resubmit the failed jobs (or those ticked) as they were, as a new submission linked to this one."""
    sub = get_submission_for_user(request, pk)
    old = _jobs_to_resubmit(request, sub)
    if not old:
        messages.error(request, NOTHING_TO_RESUBMIT)
        return redirect("batch_submission", pk=sub.pk)
    return _resubmit(request, sub, old, sub.script)


@login_required
@require_http_methods(["GET", "POST"])
def batch_resubmit_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """Fix the script, then resubmit: the form starts from the current script; the jobs are the failed
    ones, or those ticked on the submission page (which posts here without a script)."""
    sub = get_submission_for_user(request, pk)
    old = _jobs_to_resubmit(request, sub)
    if not old:
        messages.error(request, NOTHING_TO_RESUBMIT)
        return redirect("batch_submission", pk=sub.pk)
    editing = request.method == "POST" and "script" in request.POST
    form = ResubmitForm(request.POST if editing else None, initial={"script": sub.script})
    if editing and form.is_valid():
        return _resubmit(request, sub, old, form.cleaned_data["script"])
    return render(request, "batch/resubmit.html", {"sub": sub, "jobs": old, "form": form})
