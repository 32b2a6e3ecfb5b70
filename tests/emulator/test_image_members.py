"""The emulator's Glance image members, with openstacksdk."""

from __future__ import annotations

import time

from emulator.server import RunningEmulator
from tests.emulator.conftest import connect
from tests.emulator.sharing_checks import check_member_errors, check_sharing


def _snapshot(conn: object, name: str) -> str:
    from openstack.connection import Connection

    assert isinstance(conn, Connection)
    flavor = next(f for f in conn.compute.flavors() if f.name == "c2-7.5gb-31")
    image = next(i for i in conn.image.images() if i.name == "canfar-ubuntu-20.04")
    server = conn.compute.create_server(name=name, image_id=image.id, flavor_id=flavor.id, networks="auto")
    conn.compute.wait_for_server(server, wait=10, interval=0.1)
    snap = conn.compute.create_server_image(server, f"{name}-snap", wait=False)
    deadline = time.monotonic() + 10
    while conn.image.get_image(snap.id).status != "active" and time.monotonic() < deadline:
        time.sleep(0.1)
    return str(snap.id)


def test_it_shares_a_snapshot_as_glance_does(emulator: RunningEmulator) -> None:
    owner, other = connect(emulator), connect(emulator, project="demo-survey")
    check_sharing(owner, other, _snapshot(owner, "pipeline"))


def test_it_lets_the_member_boot_from_an_accepted_snapshot(emulator: RunningEmulator) -> None:
    owner, other = connect(emulator), connect(emulator, project="demo-survey")
    image_id = _snapshot(owner, "pipeline")
    owner.image.update_image(image_id, visibility="shared")
    owner.image.add_member(image_id, member=other.current_project_id)
    other.image.update_member(other.current_project_id, image_id, status="accepted")
    flavor = next(f for f in other.compute.flavors() if f.name == "c2-7.5gb-31")
    server = other.compute.create_server(
        name="worker", image_id=image_id, flavor_id=flavor.id, networks="auto"
    )
    assert other.compute.wait_for_server(server, wait=10, interval=0.1).status == "ACTIVE"
    owner.image.delete_image(image_id)
    assert image_id not in {i.id for i in other.image.images(member_status="all")}


def test_it_answers_member_calls_with_glances_codes_and_words(emulator: RunningEmulator) -> None:
    owner, other = connect(emulator), connect(emulator, project="demo-survey")
    check_member_errors(owner, other, _snapshot(owner, "pipeline"))
