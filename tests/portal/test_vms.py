"""VM pages without a cloud: ownership, methods and what they render from the database."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from portal.models import FloatingIP, Image, KeyPair, Operation, Project, Quota, Server


@pytest.fixture
def bobs_vm(bob: User) -> Server:
    return Server.objects.create(
        project=Project.objects.get(name="bob-project"),
        name="bobs-secret-vm",
        external_id="b-1",
        status="ACTIVE",
    )


@pytest.fixture
def alices_vm(alice: User) -> Server:
    return Server.objects.create(
        project=Project.objects.get(name="alice-lensing"),
        name="alices-vm",
        external_id="a-1",
        status="ACTIVE",
        floating_ips=["203.0.113.5"],
        default_user="rocky",
        image_name="canfar-rocky-8",
    )


@pytest.mark.parametrize(
    "path",
    [
        "/vms/{pk}/",
        "/vms/{pk}/stop/",
        "/vms/{pk}/snapshot/",
        "/vms/{pk}/associate/",
        "/vms/{pk}/extend/",
        "/vms/{pk}/console/",
    ],
)
def test_it_returns_404_for_another_users_vm(alice_client: Any, bobs_vm: Server, path: str) -> None:
    url = path.format(pk=bobs_vm.pk)
    response = alice_client.post(url) if not url.endswith(f"/{bobs_vm.pk}/") else alice_client.get(url)
    assert response.status_code == 404


def test_it_does_not_delete_another_users_vm_in_bulk(alice_client: Any, bobs_vm: Server) -> None:
    response = alice_client.post("/vms/delete/", {"server": [bobs_vm.pk]}, follow=True)
    assert "Select VMs of the current project" in response.content.decode()
    assert Server.objects.get(pk=bobs_vm.pk).status == "ACTIVE"
    assert not Operation.objects.filter(kind="vm_delete").exists()


def test_it_refuses_get_on_actions(alice_client: Any, alices_vm: Server) -> None:
    for path in (
        f"/vms/{alices_vm.pk}/stop/",
        f"/vms/{alices_vm.pk}/snapshot/",
        "/vms/delete/",
        "/vms/ips/allocate/",
    ):
        assert alice_client.get(path).status_code == 405, path


def test_it_shows_the_ssh_command_with_the_images_default_user(alice_client: Any, alices_vm: Server) -> None:
    html = alice_client.get(f"/vms/{alices_vm.pk}/").content.decode()
    assert "ssh rocky@203.0.113.5" in html


def test_it_lists_only_the_current_projects_vms_and_flags_expiry(
    alice_client: Any, alices_vm: Server, bobs_vm: Server
) -> None:
    Server.objects.filter(pk=alices_vm.pk).update(expires_at=timezone.now() - timedelta(hours=1))
    html = alice_client.get("/vms/").content.decode()
    assert "alices-vm" in html and "bobs-secret-vm" not in html and "expired" in html
    dashboard = alice_client.get("/").content.decode()
    assert "past the end of its lifetime: alices-vm" in dashboard


def test_it_shows_the_lifetime_left_in_one_plain_unit(alice_client: Any, alices_vm: Server) -> None:
    for left, shown in ((timedelta(days=13, hours=5), "13 days"), (timedelta(hours=5, minutes=3), "5 hours")):
        Server.objects.filter(pk=alices_vm.pk).update(expires_at=timezone.now() + left)
        assert f">{shown}</span>" in alice_client.get("/vms/").content.decode()
    alices_vm.expires_at = timezone.now() + timedelta(minutes=1, seconds=30)
    assert alices_vm.lifetime_left_text == "1 minute"


def test_it_polls_the_vm_list_only_while_something_changes(alice_client: Any, alices_vm: Server) -> None:
    assert 'data-polling="false"' in alice_client.get("/vms/").content.decode()
    Server.objects.filter(pk=alices_vm.pk).update(status="BUILD")
    assert 'hx-trigger="every 2s"' in alice_client.get("/vms/").content.decode()


def test_it_records_a_snapshot_operation_with_the_warning(alice_client: Any, alices_vm: Server) -> None:
    response = alice_client.post(
        f"/vms/{alices_vm.pk}/snapshot/", {"name": "alices-vm-2026-11-27"}, follow=True
    )
    assert "Do not use the VM until the snapshot is active" in response.content.decode()
    op = Operation.objects.get(kind="vm_snapshot")
    assert op.params == {"server_id": alices_vm.pk, "name": "alices-vm-2026-11-27"}


@pytest.mark.parametrize("name", ["", "../etc", "a b", "x" * 80, "<b>"])
def test_it_refuses_bad_snapshot_names(alice_client: Any, alices_vm: Server, name: str) -> None:
    alice_client.post(f"/vms/{alices_vm.pk}/snapshot/", {"name": name})
    assert not Operation.objects.filter(kind="vm_snapshot").exists()


def test_it_says_quota_exceeded_on_the_allocate_button(alice_client: Any, alice: User) -> None:
    project = Project.objects.get(name="alice-lensing")
    Quota.objects.create(project=project, floating_ips_used=1, floating_ips_limit=1)
    FloatingIP.objects.create(project=project, external_id="f1", address="203.0.113.9")
    html = alice_client.get("/vms/ips/").content.decode()
    assert "Quota reached (1 of 1 used)" in html and "disabled" in html


def test_it_hides_another_users_key_pairs_and_refuses_to_delete_them(alice_client: Any, bob: User) -> None:
    bobs = KeyPair.objects.create(
        project=Project.objects.get(name="bob-project"),
        owner=bob,
        name="bobkey",
        public_key="ssh-ed25519 AAAA",
    )
    assert "bobkey" not in alice_client.get("/vms/keypairs/").content.decode()
    assert alice_client.post(f"/vms/keypairs/{bobs.pk}/delete/").status_code == 404


def test_it_refuses_to_delete_a_shared_image(alice_client: Any, alice: User) -> None:
    image = Image.objects.create(
        project=Project.objects.get(name="alice-lensing"),
        external_id="i1",
        name="canfar-ubuntu-20.04",
        status="active",
    )
    response = alice_client.post(f"/vms/images/{image.pk}/delete/", follow=True)
    assert "only your snapshots can be deleted" in response.content.decode()


@pytest.mark.parametrize("value", ["abc", "²", "1" * 5000, "-3", ""])
def test_it_answers_hostile_ids_with_a_message_not_an_error(
    alice_client: Any, alices_vm: Server, value: str
) -> None:
    for path, field in ((f"/vms/{alices_vm.pk}/associate/", "fip"), ("/vms/delete/", "server")):
        response = alice_client.post(path, {field: value}, follow=True)
        assert response.status_code == 200, path
    fip = FloatingIP.objects.create(project=alices_vm.project, external_id="f9", address="203.0.113.9")
    response = alice_client.post(f"/vms/ips/{fip.pk}/associate/", {"server": value}, follow=True)
    assert response.status_code == 200 and b"Choose a running VM" in response.content
    assert not Operation.objects.exists()
