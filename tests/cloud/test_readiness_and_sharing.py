"""Prepare for batch, seen step by step; warnings before launch; snapshots shared between projects.

Through the portal's views and operations, against the emulator over HTTP (tests/cloud/conftest.py).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from orchestration.operations import start_operation
from portal.models import Flavor, Image, ImageShare, Operation, Project, Server
from tests.cloud.conftest import drive, last_op, project, public_key, sync

# The emulator plays cloud-init on the console and has the seed's images; the real cloud's fake virt driver
# boots nothing, so its console never shows the markers. Sharing on the real cloud: test_sharing_real_cloud.py.
pytestmark = pytest.mark.emulator_only

BATCH = {"prepare_for_batch": "on", "packages": "source-extractor libcfitsio-bin"}


def _post_launch(client: Any, name: str, image: str, flavor: str = "c2-7.5gb-31", **extra: Any) -> Any:
    p = project()
    data = {
        "name": name,
        "source": Image.objects.get(project=p, name=image).external_id,
        "flavor": Flavor.objects.get(project=p, name=flavor).external_id,
        "key_name": "",
        "count": 1,
        **extra,
    }
    return client.post("/vms/launch/", data)


def _ready_vm(client: Any, name: str = "pipeline") -> Server:
    assert _post_launch(client, name, "canfar-ubuntu-20.04", **BATCH).status_code == 302
    assert drive(last_op("vm_launch")).state == "succeeded"
    readiness = drive(last_op("vm_readiness"))
    assert readiness.state == "succeeded", readiness.error
    return Server.objects.get(name=name)


def test_it_follows_prepare_for_batch_until_ready(demo_client: Any) -> None:
    demo_client.post("/vms/keypairs/", {"name": "laptop", "public_key": public_key()})
    drive(last_op("keypair_import"))
    server = _ready_vm(demo_client)
    assert server.prepared_for_batch and server.readiness_state == "ready"
    assert [s["text"] for s in server.readiness_steps] == [
        "user created demo",
        "scratch mounted /mnt/scratch (ephemeral disk)",
        "package source-extractor installed",
        "package libcfitsio-bin installed",
    ]
    html = demo_client.get(f"/vms/{server.pk}/").content.decode()
    assert 'data-testid="readiness-state">ready<' in html
    assert "ready for batch" in html and "canfar_create_user" not in html


def test_it_shows_the_line_that_failed(demo_client: Any) -> None:
    response = _post_launch(demo_client, "rocky", "canfar-rocky-8", **BATCH)
    assert response.status_code == 200  # warned first: nothing launched yet
    assert not Operation.objects.filter(kind="vm_launch").exists()
    html = response.content.decode()
    assert "canfar-rocky-8 installs packages with dnf" in html
    assert "source-extractor → sextractor" in html and "libcfitsio-bin → cfitsio" in html

    assert (
        _post_launch(demo_client, "rocky", "canfar-rocky-8", launch_anyway="on", **BATCH).status_code == 302
    )
    drive(last_op("vm_launch"))
    op = drive(last_op("vm_readiness"))
    assert op.state == "failed"
    assert op.error == "Preparing rocky for batch failed: Error: Unable to find a match: source-extractor"
    server = Server.objects.get(name="rocky")
    assert server.readiness_state == "failed"
    assert {"text": "package source-extractor failed", "state": "failed"} in server.readiness_steps
    html = demo_client.get(f"/vms/{server.pk}/").content.decode()
    assert "Error: Unable to find a match: source-extractor" in html and "not ready" in html


def test_it_warns_about_a_flavor_without_scratch(demo_client: Any) -> None:
    html = _post_launch(demo_client, "p", "canfar-ubuntu-20.04", flavor="p2-7.5gb", **BATCH).content.decode()
    assert "p2-7.5gb has no scratch disk" in html
    assert "canfar-ubuntu-20.04 installs packages" not in html  # the packages fit this image
    # Without "prepare for batch" there is nothing to warn about.
    assert _post_launch(demo_client, "p", "canfar-ubuntu-20.04", flavor="p2-7.5gb").status_code == 302


def test_it_boots_the_newest_ubuntu_by_default(demo_client: Any) -> None:
    html = demo_client.get("/vms/launch/").content.decode()
    ubuntu = Image.objects.get(project=project(), name="canfar-ubuntu-20.04").external_id
    assert f'<option value="{ubuntu}" selected>canfar-ubuntu-20.04</option>' in html


def _switch(client: Any, name: str) -> None:
    client.post("/projects/switch/", {"project": Project.objects.get(name=name).pk})


def test_it_shares_a_snapshot_with_another_project(demo_client: Any, demo: User) -> None:
    server = _ready_vm(demo_client)
    demo_client.post(f"/vms/{server.pk}/snapshot/", {"name": "image-reduction-2023-08-21"})
    assert drive(last_op("vm_snapshot")).state == "succeeded"
    snap = Image.objects.get(project=project(), name="image-reduction-2023-08-21")
    survey = project("demo-survey")

    demo_client.post(f"/vms/images/{snap.pk}/share/", {"project": survey.external_id})
    assert drive(last_op("image_share")).state == "succeeded"
    share = ImageShare.objects.get()
    assert (share.member_project_id, share.member_project_name, share.status) == (
        survey.external_id,
        "demo-survey",
        "pending",
    )
    assert 'data-testid="share-status">pending<' in demo_client.get("/vms/images/").content.decode()
    assert not Image.objects.filter(project=survey, external_id=snap.external_id).exists()

    _switch(demo_client, "demo-survey")
    html = demo_client.get("/vms/images/").content.decode()
    assert 'data-offer="image-reduction-2023-08-21"' in html and "from demo-lensing" in html
    demo_client.post(f"/vms/shares/{share.pk}/accept/")
    assert drive(last_op("image_share")).state == "succeeded"
    assert ImageShare.objects.get().status == "accepted"
    shared = Image.objects.get(project=survey, external_id=snap.external_id)
    assert shared.is_snapshot
    html = demo_client.get("/vms/images/").content.decode()
    assert "shared from demo-lensing" in html and 'data-offer="' not in html
    assert "image-reduction-2023-08-21" in demo_client.get("/batch/new/").content.decode()
    assert "shared from demo-lensing" in demo_client.get("/batch/new/").content.decode()
    assert "shared from demo-lensing" in demo_client.get("/vms/launch/").content.decode()

    flavor = Flavor.objects.get(project=survey, name="c2-7.5gb-31").external_id
    data = {"name": "worker", "source": snap.external_id, "flavor": flavor, "key_name": "", "count": 1}
    assert demo_client.post("/vms/launch/", data).status_code == 302
    assert drive(last_op("vm_launch")).state == "succeeded"
    assert Server.objects.get(project=survey, name="worker").status == "ACTIVE"

    _switch(demo_client, "demo-lensing")
    demo_client.post(f"/vms/shares/{share.pk}/revoke/")
    assert drive(last_op("image_share")).state == "succeeded"
    assert not ImageShare.objects.exists()
    assert not Image.objects.filter(project=survey, external_id=snap.external_id).exists()


def test_it_keeps_sharing_to_the_projects_involved(demo_client: Any, demo: User) -> None:
    sync("demo-survey")
    snap = Image.objects.filter(project=project()).first()
    assert snap is not None
    Image.objects.filter(pk=snap.pk).update(is_snapshot=True)
    share = ImageShare.objects.create(
        project=project(),
        image_external_id=snap.external_id,
        image_name=snap.name,
        member_project_id=project("demo-survey").external_id,
        status="pending",
    )
    mallory = User.objects.create_user("mallory", password="x")
    other = Project.objects.create(external_id="m" * 32, name="mallory-project")
    other.members.add(mallory)
    client = Client()
    client.force_login(mallory)
    assert client.post(f"/vms/images/{snap.pk}/share/", {"project_id": other.external_id}).status_code == 404
    for action in ("accept", "reject", "revoke"):
        assert client.post(f"/vms/shares/{share.pk}/{action}/").status_code == 404
    assert client.post(f"/vms/shares/{share.pk}/steal/").status_code == 400
    assert demo_client.get(f"/vms/shares/{share.pk}/accept/").status_code == 405
    assert client.get(f"/vms/images/{snap.pk}/share/").status_code == 404
    assert demo_client.put(f"/vms/images/{snap.pk}/share/").status_code == 405
    page = demo_client.get(f"/vms/images/{snap.pk}/share/").content.decode()
    assert f'<option value="{project("demo-survey").external_id}">demo-survey</option>' in page
    assert f'value="{project().external_id}"' not in page  # not its own project
    # Not with its own project, nor with something that is not a project ID.
    own = demo_client.post(f"/vms/images/{snap.pk}/share/", {"project_id": project().external_id})
    assert "already belongs to this project" in own.content.decode()
    bad = demo_client.post(f"/vms/images/{snap.pk}/share/", {"project_id": "../../etc"})
    assert "A project ID is hexadecimal" in bad.content.decode()
    assert "Choose a project" in demo_client.post(f"/vms/images/{snap.pk}/share/", {}).content.decode()
    assert ImageShare.objects.count() == 1
    assert not Operation.objects.filter(kind="image_share").exclude(owner=demo).exists()


def test_it_warns_while_the_user_chooses(demo_client: Any) -> None:
    p = project()
    rocky = Image.objects.get(project=p, name="canfar-rocky-8").external_id
    p2 = Flavor.objects.get(project=p, name="p2-7.5gb").external_id
    query = {"source": rocky, "flavor": p2, "prepare_for_batch": "on", "packages": "source-extractor git"}
    html = demo_client.get("/vms/launch/warnings/", query).content.decode()
    assert html.count('data-testid="live-warning"') == 2 and "source-extractor → sextractor" in html
    assert "git" not in html.split("installs packages with dnf, but")[1].split("(")[0]
    query.pop("prepare_for_batch")
    assert "live-warning" not in demo_client.get("/vms/launch/warnings/", query).content.decode()
    bad = {"source": "<script>", "flavor": "x", "prepare_for_batch": "on", "packages": "$(rm -rf /)"}
    response = demo_client.get("/vms/launch/warnings/", bad)
    assert response.status_code == 200 and "live-warning" not in response.content.decode()
    assert demo_client.post("/vms/launch/warnings/", query).status_code == 405


def test_deleting_a_shared_snapshot_ends_its_sharing(demo_client: Any) -> None:
    server = _ready_vm(demo_client)
    demo_client.post(f"/vms/{server.pk}/snapshot/", {"name": "to-delete"})
    drive(last_op("vm_snapshot"))
    snap = Image.objects.get(project=project(), name="to-delete")
    survey = project("demo-survey")
    demo_client.post(f"/vms/images/{snap.pk}/share/", {"project": survey.external_id})
    drive(last_op("image_share"))
    _switch(demo_client, "demo-survey")
    demo_client.post(f"/vms/shares/{ImageShare.objects.get().pk}/accept/")
    drive(last_op("image_share"))
    assert Image.objects.filter(project=survey, external_id=snap.external_id).exists()
    _switch(demo_client, "demo-lensing")
    demo_client.post(f"/vms/images/{snap.pk}/delete/")
    assert drive(last_op("image_delete")).state == "succeeded"
    assert not ImageShare.objects.exists()
    assert not Image.objects.filter(external_id=snap.external_id).exists()


def test_a_share_the_cloud_refuses_leaves_nothing_behind(demo_client: Any) -> None:
    server = _ready_vm(demo_client)
    demo_client.post(f"/vms/{server.pk}/snapshot/", {"name": "gone-soon"})
    drive(last_op("vm_snapshot"))
    snap = Image.objects.get(project=project(), name="gone-soon")
    from tests.cloud.conftest import demo_sdk

    demo_sdk().image.delete_image(snap.external_id)  # deleted behind the portal's back
    demo_client.post(f"/vms/images/{snap.pk}/share/", {"project": project("demo-survey").external_id})
    op = drive(last_op("image_share"))
    assert op.state == "failed" and "no longer exists" in op.error
    assert not ImageShare.objects.exists()


def test_it_gives_up_when_cloud_init_never_reports(demo_client: Any, demo: User) -> None:
    assert _post_launch(demo_client, "silent", "canfar-ubuntu-20.04").status_code == 302  # no user-data
    drive(last_op("vm_launch"))
    server = Server.objects.get(name="silent")
    op = start_operation(
        owner=demo, project=project(), kind="vm_readiness", title="t", params={"server_id": server.pk}
    )
    Operation.objects.filter(pk=op.pk).update(started=timezone.now() - timedelta(hours=1))
    done = drive(op)
    assert done.state == "failed" and "reported no result within 45 minutes" in done.error
    assert Server.objects.get(pk=server.pk).readiness_state == "waiting"
