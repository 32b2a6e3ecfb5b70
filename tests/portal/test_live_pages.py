"""Pages that follow what happens without a reload, and a stale tab that cannot start what cannot work."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User

from portal.models import FloatingIP, Operation, Project, Quota, Server


def _project() -> Project:
    return Project.objects.get(name="alice-lensing")


def test_a_stale_tab_cannot_allocate_a_second_floating_ip(alice_client: Any, alice: User) -> None:
    project = _project()
    Quota.objects.create(project=project, floating_ips_used=1, floating_ips_limit=1)
    FloatingIP.objects.create(project=project, external_id="f-1", address="203.0.113.7")
    response = alice_client.post("/vms/ips/allocate/", follow=True)
    html = response.content.decode()
    assert "The project&#x27;s floating IP quota (1) is used up" in html
    assert not Operation.objects.filter(kind="fip_allocate").exists()  # nothing to fail later in Activity


def test_a_second_click_while_allocating_starts_nothing(alice_client: Any, alice: User) -> None:
    Quota.objects.create(project=_project(), floating_ips_used=0, floating_ips_limit=1)
    alice_client.post("/vms/ips/allocate/")
    html = alice_client.post("/vms/ips/allocate/", follow=True).content.decode()
    assert "already being allocated" in html
    assert Operation.objects.filter(kind="fip_allocate").count() == 1


def test_the_floating_ip_page_follows_an_allocation_header_button_included(
    alice_client: Any, alice: User
) -> None:
    project = _project()
    Quota.objects.create(project=project, floating_ips_used=0, floating_ips_limit=1)
    alice_client.post("/vms/ips/allocate/")
    html = alice_client.get("/vms/ips/").content.decode()
    live = html[html.index('id="ip-live"') :]
    assert 'hx-trigger="every 2s"' in live[:300] and "Allocating…" in live
    Operation.objects.filter(kind="fip_allocate").update(state=Operation.SUCCEEDED)
    FloatingIP.objects.create(project=project, external_id="f-1", address="203.0.113.7")
    Quota.objects.filter(project=project).update(floating_ips_used=1)
    html = alice_client.get("/vms/ips/").content.decode()
    assert "Allocating…" not in html and 'data-polling="false"' in html
    assert "Release</button>" in html and "Quota reached (1 of 1 used)" in html


def test_the_vm_list_refreshes_the_quota_with_the_table(alice_client: Any, alice: User) -> None:
    project = _project()
    Quota.objects.create(project=project, instances_used=0, instances_limit=10)
    Server.objects.create(project=project, name="new-vm", status="BUILD")
    html = alice_client.get("/vms/", HTTP_HX_REQUEST="true").content.decode()
    assert 'id="vm-quota" hx-swap-oob="true"' in html and "0 of 10" in html
    Quota.objects.filter(project=project).update(instances_used=1)
    assert "1 of 10" in alice_client.get("/vms/", HTTP_HX_REQUEST="true").content.decode()


def test_the_vm_list_follows_an_operation_until_it_ends(alice_client: Any, alice: User) -> None:
    project = _project()
    vm = Server.objects.create(project=project, name="vm", external_id="s-1", status="ACTIVE")
    op = Operation.objects.create(
        owner=alice, project=project, kind="vm_delete", title="d", target=f"vm:{vm.pk}"
    )
    assert 'data-polling="true"' in alice_client.get("/vms/").content.decode()
    Operation.objects.filter(pk=op.pk).update(state=Operation.SUCCEEDED)
    html = alice_client.get("/vms/").content.decode()
    # the Age column moves and VMs deleted outside go while the page is open
    assert 'data-polling="false"' in html and 'hx-trigger="every 10s"' in html


def test_the_snapshot_warning_goes_when_the_snapshot_is_done(alice_client: Any, alice: User) -> None:
    vm = Server.objects.create(project=_project(), name="vm", external_id="s-1", status="ACTIVE")
    alice_client.post(f"/vms/{vm.pk}/snapshot/", {"name": "vm-snap"})
    for path in (f"/vms/{vm.pk}/", "/vms/"):
        assert "Do not use the VM until the snapshot is active" in alice_client.get(path).content.decode()
    Operation.objects.filter(kind="vm_snapshot").update(state=Operation.SUCCEEDED)
    for path in (f"/vms/{vm.pk}/", "/vms/"):
        assert "until the snapshot is active" not in alice_client.get(path).content.decode()


def test_the_dashboard_counts_follow_operations_until_they_end(alice_client: Any, alice: User) -> None:
    op = Operation.objects.create(owner=alice, project=_project(), kind="system_check", title="Check")
    html = alice_client.get("/").content.decode()
    live = html[html.index('id="dashboard-live"') :]
    assert live.startswith('id="dashboard-live" data-polling="true"') and "1 operation running" in live
    Operation.objects.filter(pk=op.pk).update(state=Operation.SUCCEEDED)
    html = alice_client.get("/").content.decode()
    assert 'id="dashboard-live" data-polling="false"' in html and "operation running" not in html
