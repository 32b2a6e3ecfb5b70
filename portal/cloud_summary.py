"""The dashboard's cloud figures and the first tutorial steps (the tutorial's: key, IP, VM, snapshot)."""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from portal.models import FloatingIP, Image, KeyPair, Server
from portal.summary import Step, Summary


def contribute(summary: Summary, user: Any, project: Any) -> None:
    if project is None:
        return
    servers = list(Server.objects.filter(project=project).only("status", "expires_at", "name", "task_state"))
    running = sum(1 for s in servers if s.status == "ACTIVE")
    expired = [s for s in servers if s.is_expired]
    snapshots = Image.objects.filter(project=project, is_snapshot=True).count()
    summary.counts["VMs"] = {
        "value": len(servers),
        "url": reverse("vms"),
        "detail": f"{running} running" + (f" · {len(expired)} expired" if expired else ""),
    }
    summary.counts["Snapshots"] = {"value": snapshots, "url": reverse("images"), "detail": ""}
    if expired:
        names = ", ".join(s.name for s in expired[:5]) + ("…" if len(expired) > 5 else "")
        summary.alerts.append(
            f"{len(expired)} VM{'s are' if len(expired) > 1 else ' is'} past the end of "
            f"{'their' if len(expired) > 1 else 'its'} lifetime: {names}. Delete "
            f"{'them' if len(expired) > 1 else 'it'} or extend the lifetime on the VMs page."
        )
    summary.steps.extend(
        [
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
            Step(
                "Launch a VM",
                "Boot canfar-ubuntu-20.04 to install your pipeline.",
                "vm_launch",
                bool(servers),
            ),
            Step(
                "Snapshot the VM",
                "Save the VM with your pipeline; batch jobs run on copies of it.",
                "images",
                snapshots > 0,
            ),
        ]
    )
