"""The VM journey through the portal's views and tasks, against the emulator over real HTTP."""

from __future__ import annotations

import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils.html import escape

from orchestration.cloud.client import close_sessions
from orchestration.operations import start_operation
from portal.crypto import encrypt
from portal.models import Credential, Flavor, FloatingIP, Image, KeyPair, Operation, Project, Quota, Server
from tests.cloud.conftest import Target, demo_sdk, drive, last_op, project, public_key, sync

# Every test here runs against the emulator and, where it is not marked emulator_only, against the
# real OpenStack too (the `target` fixture; those runs are marked real_cloud).


def test_it_turns_the_sign_in_into_app_credentials_without_storing_the_password(
    demo_client: Any, demo: User, target: Target
) -> None:
    names = sorted(Project.objects.filter(members=demo).values_list("name", flat=True))
    assert names == [target.project, target.other]
    creds = Credential.objects.filter(user=demo, kind="openstack")
    assert creds.count() == 2
    for cred in creds:
        assert cred.identifier and cred.expires_at and cred.secret
        assert cred.secret.encode() not in bytes(cred.secret_encrypted)
        assert target.password.encode() not in bytes(cred.secret_encrypted)
    assert not Credential.objects.filter(kind="keystone_token").exists()
    assert Flavor.objects.filter(project=project(), name="c2-7.5gb-31", ephemeral_gb=31).exists()
    assert Image.objects.filter(project=project(), name="canfar-ubuntu-20.04", default_user="ubuntu").exists()
    quota = Quota.objects.get(project=project())
    assert (quota.floating_ips_limit, quota.instances_limit) == (1, 10)
    html = demo_client.get("/").content.decode()
    assert target.other in html and "Import an SSH key" in html


def test_it_imports_a_key_pair_with_its_fingerprint(demo_client: Any, demo: User, tmp_path: Path) -> None:
    key_text = public_key()
    response = demo_client.post("/vms/keypairs/", {"name": "laptop", "public_key": key_text})
    assert response.status_code == 302
    op = drive(last_op("keypair_import"))
    assert op.state == "succeeded", op.error
    key = KeyPair.objects.get(owner=demo, name="laptop", project=project())
    assert key.fingerprint and not key.pending
    # Shown as `ssh-keygen -l` shows it: SHA256, labelled.
    (tmp_path / "key.pub").write_text(key_text + "\n")
    listed = subprocess.run(
        ["ssh-keygen", "-l", "-f", str(tmp_path / "key.pub")], capture_output=True, text=True, check=True
    ).stdout.split()[1]
    assert listed.startswith("SHA256:") and key.sha256_fingerprint == listed
    html = demo_client.get("/vms/keypairs/").content.decode()
    assert listed in html and key.fingerprint not in html
    assert listed in demo_client.get("/vms/launch/").content.decode()


@pytest.mark.emulator_only
def test_it_explains_a_broken_key_instead_of_failing(demo_client: Any) -> None:
    for bad in [
        "ssh-rsa AAAAnotakey",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nabc",
        "<script>alert(1)</script>",
    ]:
        response = demo_client.post("/vms/keypairs/", {"name": "bad", "public_key": bad})
        assert response.status_code == 200
        html = response.content.decode()
        assert "not a valid SSH public key" in html or "private key" in html
        assert "<script>alert(1)</script>" not in html
    assert not Operation.objects.filter(kind="keypair_import").exists()


def _launch(client: Any, name: str, source: str | None = None, **extra: Any) -> Operation:
    p = project()
    image = source or Image.objects.get(project=p, name="canfar-ubuntu-20.04").external_id
    flavor = Flavor.objects.get(project=p, name="c2-7.5gb-31").external_id
    data = {"name": name, "source": image, "flavor": flavor, "key_name": "", "count": 1, "packages": ""}
    data.update(extra)
    response = client.post("/vms/launch/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    return last_op("vm_launch")


def test_it_launches_a_vm_which_becomes_active(demo_client: Any) -> None:
    op = _launch(demo_client, "pipeline", prepare_for_batch="on", packages="source-extractor libcfitsio-bin")
    assert Server.objects.get(name="pipeline").status == "BUILD"
    assert "#cloud-config" in op.params["user_data"] and "/mnt/scratch" in op.params["user_data"]
    op = drive(op)
    assert op.state == "succeeded", op.error
    server = Server.objects.get(name="pipeline")
    assert server.status == "ACTIVE" and server.external_id and server.fixed_ips
    assert server.expires_at is not None
    quota = Quota.objects.get(project=project())
    assert (quota.instances_used, quota.cores_used, quota.ram_used_mb) == (1, 2, 7680)
    html = demo_client.get("/vms/").content.decode()
    assert "pipeline" in html and ">ACTIVE<" in html.replace("\n", "")


def test_it_attaches_the_projects_one_ip_and_shows_the_ssh_command(demo_client: Any) -> None:
    drive(_launch(demo_client, "web"))
    demo_client.post("/vms/ips/allocate/")
    op = drive(last_op("fip_allocate"))
    assert op.state == "succeeded", op.error
    fip = FloatingIP.objects.get(project=project())
    assert fip.address.count(".") == 3
    assert "Quota reached (1 of 1 used)" in demo_client.get("/vms/ips/").content.decode()
    server = Server.objects.get(name="web")
    demo_client.post(f"/vms/{server.pk}/associate/", {"fip": fip.pk})
    op = drive(last_op("fip_associate"))
    assert op.state == "succeeded", op.error
    html = demo_client.get(f"/vms/{server.pk}/").content.decode()
    assert f"ssh ubuntu@{fip.address}" in html
    stale = demo_client.post(
        "/vms/ips/allocate/", follow=True
    )  # a stale tab: refused at once, from the database
    assert "floating IP quota (1) is used up" in stale.content.decode()
    assert Operation.objects.filter(kind="fip_allocate").count() == 1
    race = start_operation(  # a race past that check: the cloud refuses it
        owner=server.launched_by, project=project(), kind="fip_allocate", title="Allocate", target="fip:new"
    )
    op = drive(race)
    assert op.state == "failed"
    assert op.error == (
        "Could not allocate a floating IP. The project's floating IP quota (1) is used up. "
        "Release one or ask for a larger quota."
    )


def test_it_snapshots_a_vm_and_boots_another_from_the_snapshot(demo_client: Any) -> None:
    drive(_launch(demo_client, "builder"))
    server = Server.objects.get(name="builder")
    response = demo_client.post(
        f"/vms/{server.pk}/snapshot/", {"name": "image-reduction-2023-08-21"}, follow=True
    )
    assert "Do not use the VM" in response.content.decode()
    op = drive(last_op("vm_snapshot"))
    assert op.state == "succeeded", op.error
    snap = Image.objects.get(name="image-reduction-2023-08-21")
    sync()  # the periodic sync must keep the link to the source VM
    snap = Image.objects.get(name="image-reduction-2023-08-21")
    assert snap.is_snapshot and snap.status == "active" and snap.source_server_name == "builder"
    assert snap.source_server_id == server.external_id
    op = drive(_launch(demo_client, "worker", source=snap.external_id))
    assert op.state == "succeeded", op.error
    assert Server.objects.get(name="worker").image_name == "image-reduction-2023-08-21"


def test_it_stops_starts_and_deletes_vms_in_bulk(demo_client: Any) -> None:
    drive(_launch(demo_client, "one"))
    drive(_launch(demo_client, "two"))
    one, two = Server.objects.get(name="one"), Server.objects.get(name="two")
    demo_client.post(f"/vms/{one.pk}/stop/")
    assert drive(last_op("vm_action")).state == "succeeded"
    assert Server.objects.get(pk=one.pk).status == "SHUTOFF"
    demo_client.post(f"/vms/{one.pk}/start/")
    assert drive(last_op("vm_action")).state == "succeeded"
    demo_client.post("/vms/delete/", {"server": [one.pk, two.pk]})
    assert drive(last_op("vm_delete")).state == "succeeded"
    assert not Server.objects.filter(pk__in=[one.pk, two.pk]).exists()


def test_it_forgets_a_vm_deleted_outside_the_portal_and_finds_one_made_outside(demo_client: Any) -> None:

    drive(_launch(demo_client, "doomed"))
    conn = demo_sdk()
    conn.compute.delete_server(Server.objects.get(name="doomed").external_id)
    image = next(conn.image.images(name="canfar-ubuntu-20.04"))
    flavor = next(f for f in conn.compute.flavors() if f.name == "p2-7.5gb")
    network = next(n for n in conn.network.networks() if not n.is_router_external)
    conn.compute.create_server(
        name="from-cli", image_id=image.id, flavor_id=flavor.id, networks=[{"uuid": network.id}]
    )
    sync()
    assert not Server.objects.filter(name="doomed").exists()
    outside = Server.objects.get(name="from-cli")
    assert outside.launched_by is None and outside.default_user == "ubuntu"
    # The activity panel says what happened to the VM that vanished.
    panel = demo_client.get("/operations/panel/").content.decode()
    assert "doomed was deleted outside the portal" in panel


@pytest.mark.emulator_only
def test_sync_follows_key_pairs_floating_ips_and_flavors_changed_outside(demo_client: Any) -> None:
    sync()
    conn = demo_sdk()
    conn.compute.create_keypair(name="laptop", public_key=public_key())
    external = next(iter(conn.network.networks(is_router_external=True)))
    ip = conn.network.create_ip(floating_network_id=external.id)
    # Rows the cloud no longer has (a flavor retired, a key deleted elsewhere) and an import in flight.
    demo_user = User.objects.get(username="demo")
    Flavor.objects.create(
        project=project(), external_id="retired", name="old", vcpus=1, ram_mb=1, disk_gb=1, ephemeral_gb=0
    )
    KeyPair.objects.create(project=project(), owner=demo_user, name="gone", public_key=public_key())
    KeyPair.objects.create(project=project(), owner=demo_user, name="importing", public_key="x", pending=True)
    sync()
    assert KeyPair.objects.get(name="laptop", owner=demo_user).pending is False
    assert set(KeyPair.objects.filter(owner=demo_user).values_list("name", flat=True)) == {
        "laptop",
        "importing",
    }
    assert FloatingIP.objects.get(external_id=ip.id).address == ip.floating_ip_address
    assert not Flavor.objects.filter(external_id="retired").exists()
    assert Flavor.objects.filter(project=project(), name="p2-7.5gb").exists()
    conn.network.delete_ip(ip.id)
    sync()
    assert not FloatingIP.objects.filter(external_id=ip.id).exists()


@pytest.mark.emulator_only
def test_it_refuses_a_launch_that_the_quota_cannot_fit(demo_client: Any) -> None:
    Quota.objects.filter(project=project()).update(instances_used=10, instances_limit=10)
    response = demo_client.get("/vms/launch/")
    assert 'data-testid="launch-blocked"' in response.content.decode()
    response = demo_client.post(
        "/vms/launch/",
        {
            "name": "toomany",
            "source": Image.objects.filter(project=project()).first().external_id,
            "flavor": Flavor.objects.filter(project=project()).first().external_id,
            "count": 1,
        },
    )
    assert (
        response.status_code == 200
        and "Not enough quota: instances (10 of 10 used)" in response.content.decode()
    )


@pytest.mark.emulator_only
def test_it_reports_the_clouds_instance_quota_refusal_in_words(demo_client: Any) -> None:
    p = project()
    ops = [_launch(demo_client, f"bulk{i}", count=1) for i in range(11)]
    results = [drive(op) for op in ops]
    failed = [op for op in results if op.state == "failed"]
    assert len(failed) == 1 and p.name
    assert failed[0].error == (
        "Could not launch the VM bulk10. The project's instance quota (10) is used up: 10 in use, "
        "1 more asked for. Delete something or ask for a larger quota."
    )
    # The refused row is an error with the reason, not a ghost left building without a cloud id.
    refused = Server.objects.get(project=p, name="bulk10")
    assert refused.status == "ERROR" and refused.external_id == ""
    assert refused.fault.startswith("Not launched: Could not launch the VM bulk10.")
    sync()
    html = demo_client.get("/vms/").content.decode()
    assert 'data-polling="false"' in html and "bulk10" in html
    demo_client.post("/vms/delete/", {"server": [refused.pk]})
    assert drive(last_op("vm_delete")).state == "succeeded"
    assert not Server.objects.filter(pk=refused.pk).exists()


@pytest.mark.emulator_only
def test_it_shows_a_vm_that_goes_to_error_with_the_clouds_reason(demo_client: Any) -> None:
    p = project()
    tiny = Flavor.objects.get(project=p, name="c2-7.5gb-31")
    image = Image.objects.get(project=p, name="canfar-ubuntu-20.04")
    server = Server.objects.create(project=p, name="broken", status="BUILD")
    op = Operation.objects.create(
        owner=User.objects.get(username="demo"),
        project=p,
        kind="vm_launch",
        title="x",
        params={
            "server_ids": [server.pk],
            "image_id": image.external_id,
            "flavor_id": tiny.external_id,
            "key_name": "",
            "user_data": "",
        },
    )
    # A snapshot that needs a bigger root disk than the flavor has: the cloud fails the build.

    conn = demo_sdk()
    source = conn.compute.create_server(
        name="src", image_id=image.external_id, flavor_id=tiny.external_id, networks="auto"
    )
    conn.compute.wait_for_server(source, wait=30)
    snap = conn.compute.create_server_image(source, "big-root", wait=True, timeout=30)
    conn.image.update_image(snap, min_disk=500)
    op.params["image_id"] = snap.id
    op.save()
    op = drive(op)
    assert op.state == "failed" and "broken failed to start" in op.error
    assert Server.objects.get(pk=server.pk).status == "ERROR"


@pytest.mark.emulator_only
def test_it_never_launches_twice_when_a_worker_dies_after_the_cloud_accepted(demo_client: Any) -> None:
    op = _launch(demo_client, "once")
    from orchestration.operations import run_operation

    run_operation.apply(args=[op.pk])  # first attempt: the server is created, then the task waits
    external = Server.objects.get(name="once").external_id
    assert external
    Operation.objects.filter(pk=op.pk).update(waiting=False)  # as if the worker died mid-wait
    from datetime import timedelta

    from django.utils import timezone

    Operation.objects.filter(pk=op.pk).update(updated=timezone.now() - timedelta(minutes=10))
    op = drive(op)
    assert op.state == "succeeded"
    sync()
    assert list(Server.objects.filter(name="once").values_list("external_id", flat=True)) == [external]


def test_it_asks_to_sign_in_again_when_the_credentials_are_revoked(
    demo_client: Any, demo: User, target: Target
) -> None:

    cred = Credential.objects.get(user=demo, project=project(), kind="openstack")
    conn = demo_sdk()
    conn.identity.delete_application_credential(conn.current_user_id, cred.identifier)
    # A real Nova honours the token it already has for up to 5 minutes more (keystonemiddleware's
    # token cache); the refusal comes when the portal signs in again with the credential, as a new
    # worker process or an expired token does: Keystone then answers 404.
    close_sessions()
    demo_client.post("/vms/keypairs/", {"name": "late", "public_key": public_key()})
    op = drive(last_op("keypair_import"))
    assert op.state == "failed" and "Sign out and sign in again" in op.error
    assert Credential.objects.get(pk=cred.pk).revoked
    assert 'data-testid="credentials-lapsed"' in demo_client.get("/vms/").content.decode()
    assert not KeyPair.objects.filter(name="late").exists()
    _sign_in_again(demo_client, demo, target)
    fresh = Credential.objects.get(user=demo, project=project(), kind="openstack")
    assert fresh.identifier != cred.identifier and not fresh.revoked
    assert 'data-testid="credentials-lapsed"' not in demo_client.get("/vms/").content.decode()


def _sign_in_again(client: Any, user: User, target: Target) -> None:
    client.post("/accounts/logout/")
    client.post("/accounts/login/", {"username": target.username, "password": target.password})
    op = Operation.objects.filter(owner=user, kind="cloud_connect").latest("pk")
    assert drive(op).state == "succeeded", Operation.objects.get(pk=op.pk).error


def test_an_expired_credential_is_marked_and_replaced_at_the_next_sign_in(
    demo_client: Any, demo: User, target: Target
) -> None:
    conn = demo_sdk()
    expires = datetime.now(UTC) + timedelta(seconds=6)  # Keystone refuses one that expired on arrival
    short = conn.identity.create_application_credential(
        user=conn.current_user_id,
        name=f"short-lived-{uuid.uuid4().hex[:8]}",
        expires_at=expires.strftime("%Y-%m-%dT%H:%M:%S"),
        unrestricted=False,
    )
    # The portal's row does not know the expiry: only the cloud's answer can tell it.
    cred = Credential.objects.get(user=demo, project=project(), kind="openstack")
    Credential.objects.filter(pk=cred.pk).update(
        identifier=short.id, secret_encrypted=encrypt(short.secret), expires_at=None
    )
    while datetime.now(UTC) < expires + timedelta(seconds=1):  # until Keystone answers 401
        time.sleep(0.2)
    sync()
    assert Credential.objects.get(pk=cred.pk).revoked
    assert 'data-testid="credentials-lapsed"' in demo_client.get("/vms/").content.decode()
    _sign_in_again(demo_client, demo, target)
    fresh = Credential.objects.get(user=demo, project=project(), kind="openstack")
    assert fresh.identifier != short.id and not fresh.revoked
    sync()
    assert project().sync_error == ""


def test_a_delete_in_flight_stays_deleting_whatever_the_sync_reads(demo_client: Any) -> None:
    drive(_launch(demo_client, "going"))
    server = Server.objects.get(name="going")
    demo_client.post("/vms/delete/", {"server": [server.pk]})
    sync()  # the cloud still says ACTIVE: the delete has not reached it yet
    assert Server.objects.get(pk=server.pk).status == "DELETING"
    assert ">DELETING<" in demo_client.get("/vms/").content.decode().replace("\n", "").replace(" ", "")
    assert drive(last_op("vm_delete")).state == "succeeded"
    assert not Server.objects.filter(pk=server.pk).exists()


@pytest.mark.emulator_only
def test_it_reboots_reads_the_console_detaches_and_releases_and_deletes_keys_and_snapshots(
    demo_client: Any, demo: User
) -> None:
    drive(_launch(demo_client, "busy"))
    server = Server.objects.get(name="busy")
    demo_client.post(f"/vms/{server.pk}/reboot/")
    assert drive(last_op("vm_action")).state == "succeeded"
    demo_client.post(f"/vms/{server.pk}/console/")
    assert drive(last_op("vm_console")).state == "succeeded"
    console = Server.objects.get(pk=server.pk).console_output
    assert "launched without a key pair" in console  # _launch gives no key
    shown = demo_client.get(f"/vms/{server.pk}/").content.decode().split('data-testid="console">')[1]
    assert shown.split("</pre>")[0] == escape(console)  # the console output, on the VM's page

    demo_client.post("/vms/ips/allocate/")
    drive(last_op("fip_allocate"))
    fip = FloatingIP.objects.get(project=project())
    demo_client.post(f"/vms/ips/{fip.pk}/associate/", {"server": server.pk})
    assert drive(last_op("fip_associate")).state == "succeeded"
    assert FloatingIP.objects.get(pk=fip.pk).server == server
    demo_client.post(f"/vms/ips/{fip.pk}/disassociate/")
    assert drive(last_op("fip_disassociate")).state == "succeeded"
    assert FloatingIP.objects.get(pk=fip.pk).port_id == ""
    demo_client.post(f"/vms/ips/{fip.pk}/release/")
    assert drive(last_op("fip_release")).state == "succeeded"
    sync()
    assert not FloatingIP.objects.filter(project=project()).exists()

    demo_client.post("/vms/keypairs/", {"name": "old", "public_key": public_key()})
    drive(last_op("keypair_import"))
    key = KeyPair.objects.get(name="old", owner=demo, project=project())
    demo_client.post(f"/vms/keypairs/{key.pk}/delete/")
    assert drive(last_op("keypair_delete")).state == "succeeded"
    sync()
    assert not KeyPair.objects.filter(name="old").exists()

    demo_client.post(f"/vms/{server.pk}/snapshot/", {"name": "busy-snap"})
    drive(last_op("vm_snapshot"))
    snap = Image.objects.get(name="busy-snap")
    demo_client.post(f"/vms/images/{snap.pk}/delete/")
    assert drive(last_op("image_delete")).state == "succeeded"
    sync()
    assert not Image.objects.filter(name="busy-snap").exists()

    before = Server.objects.get(pk=server.pk).expires_at
    demo_client.post(f"/vms/{server.pk}/extend/")
    assert Server.objects.get(pk=server.pk).expires_at > before


@pytest.mark.emulator_only
def test_it_adopts_the_server_when_the_sync_sees_it_before_the_launch_records_it(demo_client: Any) -> None:
    op = _launch(demo_client, "racy")
    row = Server.objects.get(name="racy")
    from orchestration.tasks import cloud_actions

    real_record = cloud_actions._record_launch

    def sync_first(server: Server, external_id: str, status: str) -> None:
        sync()  # beat's sync lists the new server before the launch task writes down its id
        real_record(server, external_id, status)

    cloud_actions._record_launch = sync_first  # type: ignore[assignment]
    try:
        assert drive(op).state == "succeeded"
    finally:
        cloud_actions._record_launch = real_record  # type: ignore[assignment]
    assert list(Server.objects.filter(name="racy").values_list("pk", "status")) == [(row.pk, "ACTIVE")]


@pytest.mark.emulator_only
def test_it_finds_the_server_an_earlier_attempt_created_instead_of_launching_another(
    demo_client: Any,
) -> None:
    op = _launch(demo_client, "again")
    from orchestration.tasks import cloud_actions

    real_record = cloud_actions._record_launch

    def die(server: Server, external_id: str, status: str) -> None:
        raise SystemExit("the worker died after the cloud accepted the server")

    cloud_actions._record_launch = die  # type: ignore[assignment]
    try:
        with pytest.raises(SystemExit):
            from orchestration.tasks.cloud_actions import vm_launch

            vm_launch(Operation.objects.get(pk=op.pk), lambda *a: None)  # type: ignore[arg-type]
    finally:
        cloud_actions._record_launch = real_record  # type: ignore[assignment]
    assert Server.objects.get(name="again").external_id == ""
    assert drive(op).state == "succeeded"

    conn = demo_sdk()
    assert [s.name for s in conn.compute.servers()].count("again") == 1


def test_a_user_the_cloud_does_not_know_is_told_so_at_sign_in(
    client: Any, cloud: Any, no_dispatch: Any, db: Any
) -> None:
    User.objects.create_user("eve", password="eve-password")
    response = client.post("/accounts/login/", {"username": "eve", "password": "eve-password"}, follow=True)
    shown = [str(m) for m in response.context["messages"]]
    assert any("Your account has no access to the cloud" in m for m in shown), shown
    assert not any("did not answer" in m for m in shown)
    assert not Operation.objects.filter(kind="cloud_connect").exists()


@pytest.mark.emulator_only
def test_two_sign_ins_moments_apart_both_connect(client: Any, demo: User, no_dispatch: Any) -> None:
    from django.test import Client

    first, second = client, Client()
    for browser in (first, second):
        browser.post("/accounts/login/", {"username": "demo", "password": "canfar-demo"})
    ops = list(Operation.objects.filter(owner=demo, kind="cloud_connect").order_by("pk"))
    assert len(ops) == 2
    for op in ops:  # the first uses up the shared sign-in token
        done = drive(op)
        assert done.state == "succeeded", done.error
    assert Credential.objects.filter(user=demo, kind="openstack").count() == 2
    assert "demo-survey" in second.get("/").content.decode()
