"""What the dashboard shows, gathered from the database only (never from outside systems).

The dashboard is a list of sections, `SECTIONS` at the bottom, in the order of the CANFAR tutorial:
each section adds its cards (the counts at the top) and its tutorial steps (the "Your workflow" list,
whose first step not done is the "Next step"). A new area adds its section to that table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count
from django.template.defaultfilters import filesizeformat
from django.urls import reverse

from portal.models import Catalogue, FloatingIP, Image, Job, KeyPair, Operation, Server, Submission, Workflow


@dataclass
class Step:
    title: str
    text: str
    url_name: str
    done: bool


@dataclass
class Card:
    """One count at the top of the dashboard, linking to its page."""

    value: int | str
    url: str
    detail: str = ""


@dataclass
class Summary:
    cards: dict[str, Card] = field(default_factory=dict)  # label -> card, in the order shown
    storage_used: int | None = None
    steps: list[Step] = field(default_factory=list)
    active_operations: int = 0
    alerts: list[str] = field(default_factory=list)

    @property
    def next_step(self) -> Step | None:
        return next((s for s in self.steps if not s.done), None)


Section = Callable[[Summary, Any, Any], None]  # (summary, user, current project or None)


def for_user(user: Any, project: Any) -> Summary:
    summary = Summary(active_operations=Operation.objects.for_user(user).active().count())
    for section in SECTIONS:
        section(summary, user, project)
    return summary


def cloud(summary: Summary, user: Any, project: Any) -> None:
    """VMs and snapshots of the current project, and the tutorial's first steps: key, IP, VM, snapshot."""
    if project is None:
        return
    servers = list(Server.objects.filter(project=project).only("status", "expires_at", "name", "task_state"))
    running = sum(1 for s in servers if s.status == "ACTIVE")
    expired = [s for s in servers if s.is_expired]
    snapshots = Image.objects.filter(project=project, is_snapshot=True).count()
    summary.cards["VMs"] = Card(
        len(servers), reverse("vms"), f"{running} running" + (f" · {len(expired)} expired" if expired else "")
    )
    summary.cards["Snapshots"] = Card(snapshots, reverse("images"))
    if expired:
        names = ", ".join(s.name for s in expired[:5]) + ("…" if len(expired) > 5 else "")
        summary.alerts.append(
            f"{len(expired)} VM{'s are' if len(expired) > 1 else ' is'} past the end of "
            f"{'their' if len(expired) > 1 else 'its'} lifetime: {names}. Delete "
            f"{'them' if len(expired) > 1 else 'it'} or extend the lifetime on the VMs page."
        )
    summary.steps += [
        Step(
            "Import an SSH key",
            "Paste your public key so you can reach your VMs.",
            "keypairs",
            KeyPair.objects.filter(project=project, owner=user).exists(),
        ),
        Step(
            "Allocate a public IP",
            "Each project has one floating IP for SSH access.",
            "ips",
            FloatingIP.objects.filter(project=project).exists(),
        ),
        Step("Launch a VM", "Boot canfar-ubuntu-20.04 to install your pipeline.", "vm_launch", bool(servers)),
        Step(
            "Snapshot the VM",
            "Save the VM with your pipeline; batch jobs run on copies of it.",
            "images",
            snapshots > 0,
        ),
    ]


def batch(summary: Summary, user: Any, project: Any) -> None:
    """The user's jobs in the queue, and the tutorial step "Submit a batch of jobs"."""
    rows = (
        Job.objects.filter(submission__owner=user, state__in=[Job.IDLE, Job.RUNNING, Job.HELD])
        .values("state")
        .annotate(n=Count("id"))
        .order_by()
    )
    by_state = {row["state"]: row["n"] for row in rows}
    detail = " · ".join(f"{by_state[k]} {k}" for k in (Job.RUNNING, Job.IDLE, Job.HELD) if by_state.get(k))
    summary.cards["Jobs"] = Card(sum(by_state.values()), reverse("batch"), detail or "none in the queue")
    submitted = Submission.objects.for_user(user).exists()
    summary.steps.append(
        Step("Submit a batch of jobs", "Run your script over a list of items.", "batch_new", submitted)
    )


def workflows(summary: Summary, user: Any, project: Any) -> None:
    """The user's running workflows, once they have any."""
    total = Workflow.objects.for_user(user).count()
    if total:
        running = Workflow.objects.for_user(user).filter(state__in=Workflow.ACTIVE_STATES).count()
        summary.cards["Workflows"] = Card(running, reverse("batch"), f"running, of {total}")


def catalogues(summary: Summary, user: Any, project: Any) -> None:
    """The user's finished catalogues, and the tutorial step "Look at your catalogues"."""
    cats = Catalogue.objects.for_user(user)
    done = cats.filter(state=Catalogue.DONE).count()
    running = cats.active().count()
    summary.cards["Catalogues"] = Card(
        done, reverse("catalogues"), f"{running} running" if running else "source catalogues"
    )
    summary.steps.append(
        Step(
            "Look at your catalogues", "Detect sources on an image and preview them.", "catalogues", done > 0
        )
    )


def storage(summary: Summary, user: Any, project: Any) -> None:
    """Storage used, as last measured (the dashboard never calls the storage service)."""
    usage = getattr(user, "storage_usage", None)
    summary.storage_used = usage.bytes_used if usage else None
    summary.cards["Storage"] = Card(
        filesizeformat(usage.bytes_used) if usage else "–",
        reverse("storage"),
        "used in your space" if usage else "open Storage to measure",
    )


# The dashboard, in the tutorial's order: cloud (key, IP, VM, snapshot), batch jobs, workflows,
# catalogues, storage.
SECTIONS: tuple[Section, ...] = (cloud, batch, workflows, catalogues, storage)
