"""VM list and overview with 500 VMs and 200 snapshots: p95 render time over real HTTP on loopback.

Reference: the same pages for an empty project, in the same process. Target (issue 4): p95 < 100 ms.
Run: .venv/bin/python bench/vm_pages.py
"""

from __future__ import annotations

from datetime import timedelta

from _django import measure, report, serve, session_for, setup_django


def main() -> None:
    setup_django()
    from django.contrib.auth.models import User
    from django.utils import timezone

    from portal.models import Flavor, FloatingIP, Image, Membership, Project, Quota, Server

    user = User.objects.create_user("bench", password="x" * 12)
    empty = Project.objects.create(name="empty", external_id="p-empty")
    big = Project.objects.create(name="big", external_id="p-big")
    for project in (empty, big):
        Membership.objects.create(user=user, project=project)
        Quota.objects.create(
            project=project, instances_limit=1000, cores_limit=4000, ram_limit_mb=10**7, floating_ips_limit=1
        )
        Flavor.objects.create(
            project=project,
            external_id="f1",
            name="c2-7.5gb-31",
            vcpus=2,
            ram_mb=7680,
            disk_gb=20,
            ephemeral_gb=31,
        )
    now = timezone.now()
    Image.objects.bulk_create(
        [
            Image(
                project=big,
                external_id=f"snap-{i}",
                name=f"snapshot-{i:03d}",
                status="active",
                is_snapshot=True,
                size=10**9,
                created_at=now - timedelta(hours=i),
            )
            for i in range(200)
        ]
    )
    Server.objects.bulk_create(
        [
            Server(
                project=big,
                external_id=f"vm-{i}",
                name=f"worker-{i:03d}",
                status="ACTIVE" if i % 7 else "SHUTOFF",
                flavor_name="c2-7.5gb-31",
                image_name="canfar-ubuntu-20.04",
                fixed_ips=[f"192.168.{i // 250}.{i % 250}"],
                created_at=now - timedelta(minutes=i),
                expires_at=now + timedelta(days=i % 20),
            )
            for i in range(500)
        ]
    )
    FloatingIP.objects.create(project=big, external_id="ip1", address="203.0.113.7")
    base, stop = serve()
    session = session_for(user)
    pages = [
        ("VM list", "/vms/"),
        ("VM list, page 10", "/vms/?page=10"),
        ("VM search", "/vms/?q=worker-4"),
        ("Quota overview", "/vms/overview/"),
        ("Images and snapshots", "/vms/images/"),
        ("Dashboard", "/"),
    ]
    print("Issue 4 pages, 500 VMs and 200 snapshots vs an empty project (same process, loopback HTTP)")
    for name, path in pages:
        _switch(session, empty.pk)
        ref = measure(session, base + path)
        _switch(session, big.pk)
        fig = measure(session, base + path)
        target = 100.0 if name in ("VM list", "VM list, page 10", "VM search", "Quota overview") else None
        report(name, fig, ref, target)
    stop()


def _switch(session, project_id: int) -> None:  # type: ignore[no-untyped-def]
    """Choose the current project in the server-side session, as the project switcher does."""
    from django.contrib.sessions.backends.db import SessionStore

    store = SessionStore(session_key=session.cookies["sessionid"])
    store["project_id"] = project_id
    store.save()


if __name__ == "__main__":
    main()
