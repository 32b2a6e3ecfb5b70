"""A token for one project never sees another project's (or user's) servers, snapshots, IPs, keypairs."""

from __future__ import annotations

import pytest
from openstack import exceptions

from emulator.server import RunningEmulator
from tests.emulator.conftest import connect, ids, public_key


def _populate(conn):  # type: ignore[no-untyped-def]
    """A server, a snapshot, a floating IP and a keypair owned by conn's project/user."""
    image = conn.image.find_image("canfar-ubuntu-20.04", ignore_missing=False)
    flavor = conn.compute.find_flavor("p2-7.5gb", ignore_missing=False)
    conn.compute.create_keypair(name="mine", public_key=public_key())
    server = conn.compute.wait_for_server(
        conn.compute.create_server(name="private-vm", image_id=image.id, flavor_id=flavor.id), interval=0.1
    )
    snapshot = conn.compute.create_server_image(server, "private-snap")
    public = conn.network.find_network("public", ignore_missing=False)
    ip = conn.network.create_ip(floating_network_id=public.id)
    return server, snapshot, ip


def test_it_hides_one_users_objects_from_another(emulator: RunningEmulator) -> None:
    alice = connect(emulator, "alice", "alice-pw", "alice-proj")
    bob = connect(emulator, "bob", "bob-pw", "bob-proj")
    server, snapshot, ip = _populate(alice)

    assert list(bob.compute.servers()) == []
    assert snapshot.id not in ids(bob.image.images())
    assert list(bob.network.ips()) == []
    assert list(bob.compute.keypairs()) == []
    assert list(bob.network.ports()) == []
    with pytest.raises(exceptions.NotFoundException):
        bob.compute.get_server(server.id)
    with pytest.raises(exceptions.NotFoundException):
        bob.image.get_image(snapshot.id)
    with pytest.raises(exceptions.NotFoundException):
        bob.network.get_ip(ip.id)
    with pytest.raises(exceptions.NotFoundException):
        bob.compute.get_keypair("mine")
    with pytest.raises(exceptions.NotFoundException):
        bob.compute.delete_server(server.id, ignore_missing=False)
    with pytest.raises(exceptions.NotFoundException):
        bob.network.delete_ip(ip.id, ignore_missing=False)
    # Bob cannot boot from Alice's private snapshot either.
    flavor = bob.compute.find_flavor("p2-7.5gb", ignore_missing=False)
    with pytest.raises(exceptions.BadRequestException):
        bob.compute.create_server(name="steal", image_id=snapshot.id, flavor_id=flavor.id)
    # ... and Alice still has everything.
    assert ids(alice.compute.servers()) == {server.id}
    assert alice.network.get_ip(ip.id).floating_ip_address == ip.floating_ip_address


def test_it_separates_the_projects_of_one_user(emulator: RunningEmulator) -> None:
    lensing = connect(emulator, project="demo-lensing")
    survey = connect(emulator, project="demo-survey")
    server, snapshot, ip = _populate(lensing)

    assert list(survey.compute.servers()) == []
    assert snapshot.id not in ids(survey.image.images())
    assert list(survey.network.ips()) == []
    with pytest.raises(exceptions.NotFoundException):
        survey.compute.get_server(server.id)
    # Each project has its own floating IP quota.
    public = survey.network.find_network("public", ignore_missing=False)
    assert (
        survey.network.create_ip(floating_network_id=public.id).floating_ip_address != ip.floating_ip_address
    )
    # Keypairs belong to the user in Nova, so they follow the user across projects.
    assert {k.name for k in survey.compute.keypairs()} == {"mine"}


def test_it_refuses_a_project_the_user_is_not_in(emulator: RunningEmulator) -> None:
    with pytest.raises(exceptions.SDKException, match="401"):
        connect(emulator, "bob", "bob-pw", "alice-proj").authorize()
