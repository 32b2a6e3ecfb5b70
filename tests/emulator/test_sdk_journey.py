"""The issue's conformance journey with openstacksdk, the client the portal uses."""

from __future__ import annotations

import pytest
from keystoneauth1.exceptions import http as auth_errors
from openstack import exceptions

from emulator.server import RunningEmulator
from tests.emulator.conftest import connect, connect_app_cred, public_key


def test_it_serves_the_whole_journey_to_openstacksdk(emulator: RunningEmulator) -> None:
    conn = connect(emulator)
    user_id = conn.current_user_id
    projects = {p.name for p in conn.identity.user_projects(user_id)}
    assert projects == {"demo-lensing", "demo-survey"}

    cred = conn.identity.create_application_credential(user=user_id, name="portal")
    app = connect_app_cred(emulator, cred.id, cred.secret)
    assert app.current_project_id == conn.current_project_id

    flavors = {f.name: f for f in app.compute.flavors(details=True)}
    assert {"c2-7.5gb-31", "c4-15gb-83", "c8-30gb-186", "p2-7.5gb", "p4-15gb"} <= set(flavors)
    c2 = flavors["c2-7.5gb-31"]
    assert (c2.vcpus, c2.ram, c2.ephemeral) == (2, 7680, 31)
    assert flavors["p2-7.5gb"].ephemeral == 0
    images = {i.name: i for i in app.image.images()}
    ubuntu = images["canfar-ubuntu-20.04"]
    assert ubuntu.properties["default_user"] == "ubuntu"
    assert images["canfar-rocky-8"].properties["default_user"] == "rocky"

    keypair = app.compute.create_keypair(name="laptop", public_key=public_key())
    assert len(keypair.fingerprint.split(":")) == 16
    network = app.network.find_network("demo-lensing-net", ignore_missing=False)

    server = app.compute.create_server(
        name="reduction-vm",
        image_id=ubuntu.id,
        flavor_id=c2.id,
        key_name="laptop",
        networks=[{"uuid": network.id}],
    )
    server = app.compute.wait_for_server(server, interval=0.1, wait=30)
    assert server.status == "ACTIVE"
    assert server.flavor.ephemeral == 31

    snapshot = app.compute.create_server_image(server, "image-reduction-2023-08-21")
    snapshot = app.image.wait_for_status(snapshot, "active", interval=0.1, wait=30)
    assert snapshot.properties["image_type"] == "snapshot"
    assert snapshot.visibility == "private"

    worker = app.compute.create_server(
        name="worker", image_id=snapshot.id, flavor_id=flavors["p2-7.5gb"].id, networks=[{"uuid": network.id}]
    )
    worker = app.compute.wait_for_server(worker, interval=0.1, wait=30)
    assert worker.image.id == snapshot.id

    public = app.network.find_network("public", ignore_missing=False)
    ip = app.network.create_ip(floating_network_id=public.id)
    assert ip.floating_ip_address.startswith("203.0.113.")
    port = next(iter(app.network.ports(device_id=server.id)))
    app.network.update_ip(ip, port_id=port.id)
    addresses = app.compute.get_server(server.id).addresses["demo-lensing-net"]
    assert {"floating", "fixed"} == {a["OS-EXT-IPS:type"] for a in addresses}
    assert ip.floating_ip_address in {a["addr"] for a in addresses}

    with pytest.raises(exceptions.ConflictException) as over_quota:
        app.network.create_ip(floating_network_id=public.id)
    assert over_quota.value.response.json()["NeutronError"]["type"] == "OverQuota"

    extra = []
    with pytest.raises(exceptions.ForbiddenException) as no_more:
        for n in range(20):
            extra.append(app.compute.create_server(name=f"filler-{n}", image_id=ubuntu.id, flavor_id=c2.id))
    assert len(extra) == 8  # 10 instances per project, two already running
    assert "Quota exceeded for instances" in str(no_more.value)

    for each in [server, worker, *extra]:
        app.compute.delete_server(each)
    app.network.delete_ip(ip)
    app.image.delete_image(snapshot)
    app.compute.delete_keypair("laptop")
    conn.identity.delete_application_credential(user_id, cred.id)
    assert list(conn.compute.servers()) == []
    assert list(conn.network.ips()) == []
    assert "image-reduction-2023-08-21" not in {i.name for i in conn.image.images()}
    assert list(conn.compute.keypairs()) == []
    # A deleted credential no longer authenticates: Keystone answers 404 (not 401) for it.
    with pytest.raises(auth_errors.NotFound, match="Could not find Application Credential"):
        list(connect_app_cred(emulator, cred.id, cred.secret).compute.servers())
