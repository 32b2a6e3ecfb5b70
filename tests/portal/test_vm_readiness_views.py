"""The VM page shows "prepare for batch" step by step, says whether to snapshot, and hints SSH accordingly."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from portal.models import Image, KeyPair, Project, Server


@pytest.fixture
def alices_vm(alice: User) -> Server:
    return Server.objects.create(
        project=Project.objects.get(name="alice-lensing"),
        name="alices-vm",
        external_id="a-1",
        status="ACTIVE",
        floating_ips=["203.0.113.5"],
        launched_by=alice,
    )


def _detail(client: Any, server: Server) -> str:
    return client.get(f"/vms/{server.pk}/").content.decode()


def test_it_shows_each_step_and_that_the_vm_is_not_ready_yet(alice_client: Any, alices_vm: Server) -> None:
    Server.objects.filter(pk=alices_vm.pk).update(
        prepared_for_batch=True,
        readiness_state="preparing",
        readiness_steps=[{"text": "user created alice", "state": "ok"}],
    )
    html = _detail(alice_client, alices_vm)
    assert 'data-testid="readiness-state">preparing<' in html
    assert "user created alice" in html and "cloud-init is still working" in html
    assert "not ready yet" in html and "canfar_create_user" not in html
    assert "Snapshot anyway · not ready</button>" in html
    assert "ssh alice@203.0.113.5" in html


def test_it_shows_the_failed_line(alice_client: Any, alices_vm: Server) -> None:
    Server.objects.filter(pk=alices_vm.pk).update(
        prepared_for_batch=True,
        readiness_state="failed",
        readiness_steps=[{"text": "package sextractor failed", "state": "failed"}],
        readiness_failure="E: Unable to locate package sextractor",
    )
    html = _detail(alice_client, alices_vm)
    assert 'data-testid="readiness-failure">Failed: <span class="mono">E: Unable to locate package' in html
    assert "not ready</span>" in html and "Snapshot anyway · failed</button>" in html


def test_it_keeps_the_old_hint_for_a_vm_not_prepared(alice_client: Any, alices_vm: Server) -> None:
    html = _detail(alice_client, alices_vm)
    assert "sudo canfar_create_user alice" in html and 'id="readiness"' not in html
    assert "not prepared for batch" in html and ">Create snapshot</button>" in html


def test_it_warns_only_while_a_snapshot_is_saving(alice_client: Any, alices_vm: Server) -> None:
    snap = Image.objects.create(
        project=alices_vm.project,
        external_id="s-1",
        name="alices-snap",
        status="saving",
        is_snapshot=True,
        source_server_id=alices_vm.external_id,
    )
    assert "The snapshot alices-snap is being saved: do not use" in _detail(alice_client, alices_vm)
    Image.objects.filter(pk=snap.pk).update(status="active")
    assert "do not use the VM" not in _detail(alice_client, alices_vm)


def test_it_labels_key_fingerprints_as_ssh_keygen_does(alice_client: Any, alice: User) -> None:
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGYdlg4LvcKfHcbzrjSdFlUEfnsMP6GUTg0V0ClqAv4F alice@laptop"
    KeyPair.objects.create(
        project=Project.objects.get(name="alice-lensing"),
        owner=alice,
        name="laptop",
        public_key=key,
        fingerprint="e4:04:1c:b8:2a:6e:4d:85:9e:0f:6b:21:7a:d0:6e:11",
    )
    html = alice_client.get("/vms/keypairs/").content.decode()
    # `ssh-keygen -l` on this key prints SHA256:WnCQQLRpQKqq5uIQ0Qg9B60gAlDBTC4nHCanj7gRqXM
    assert "SHA256:WnCQQLRpQKqq5uIQ0Qg9B60gAlDBTC4nHCanj7gRqXM" in html and "e4:04:1c" not in html
