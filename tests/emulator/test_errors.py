"""Bad requests get the status codes and error bodies real OpenStack gives (see openstack-recordings/)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from keystoneauth1.exceptions import http as auth_errors
from openstack import exceptions

from emulator.server import RunningEmulator
from tests.emulator.conftest import connect, public_key


def _image_and_flavor(conn):  # type: ignore[no-untyped-def]
    image = conn.image.find_image("canfar-ubuntu-20.04", ignore_missing=False)
    flavor = conn.compute.find_flavor("c2-7.5gb-31", ignore_missing=False)
    return image, flavor


def test_it_answers_malformed_json_with_nova_400(emulator: RunningEmulator) -> None:
    conn = connect(emulator)
    token = conn.session.get_token()
    response = requests.post(
        f"{emulator.url}/compute/v2.1/servers",
        data='{"server": {"name": "x",',
        headers={"X-Auth-Token": token, "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json() == {"badRequest": {"code": 400, "message": "Malformed request body"}}
    assert response.headers["x-openstack-request-id"].startswith("req-")


def test_it_rejects_an_unknown_flavor(emulator: RunningEmulator) -> None:
    conn = connect(emulator)
    image, _flavor = _image_and_flavor(conn)
    with pytest.raises(exceptions.BadRequestException, match="Flavor no-such-flavor could not be found"):
        conn.compute.create_server(name="x", image_id=image.id, flavor_id="no-such-flavor")


def test_it_rejects_an_unknown_image(emulator: RunningEmulator) -> None:
    conn = connect(emulator)
    _image, flavor = _image_and_flavor(conn)
    with pytest.raises(exceptions.BadRequestException, match="could not be found"):
        conn.compute.create_server(name="x", image_id="0" * 32, flavor_id=flavor.id)


def test_it_refuses_a_duplicate_keypair_name(emulator: RunningEmulator) -> None:
    conn = connect(emulator)
    conn.compute.create_keypair(name="laptop", public_key=public_key())
    with pytest.raises(exceptions.ConflictException, match="Key pair 'laptop' already exists"):
        conn.compute.create_keypair(name="laptop", public_key=public_key())


def test_it_refuses_an_invalid_public_key(emulator: RunningEmulator) -> None:
    conn = connect(emulator)
    with pytest.raises(exceptions.BadRequestException, match="failed to generate fingerprint"):
        conn.compute.create_keypair(name="bad", public_key="ssh-ed25519 notakey x")


def test_it_answers_404_when_a_server_is_deleted_twice(emulator: RunningEmulator) -> None:
    conn = connect(emulator)
    image, flavor = _image_and_flavor(conn)
    server = conn.compute.create_server(name="once", image_id=image.id, flavor_id=flavor.id)
    conn.compute.delete_server(server)
    with pytest.raises(exceptions.NotFoundException, match=f"Instance {server.id} could not be found"):
        conn.compute.delete_server(server, ignore_missing=False)


def test_it_refuses_a_wrong_password(emulator: RunningEmulator) -> None:
    with pytest.raises(exceptions.SDKException, match="HTTP 401"):
        connect(emulator, password="wrong").authorize()
    with pytest.raises(auth_errors.Unauthorized):
        list(connect(emulator, password="wrong").compute.servers())


def test_it_puts_an_impossible_server_in_error_with_a_fault(emulator: RunningEmulator) -> None:
    conn = connect(emulator)
    image, flavor = _image_and_flavor(conn)
    server = conn.compute.create_server(name="vm", image_id=image.id, flavor_id=flavor.id)
    snapshot = conn.compute.create_server_image(conn.compute.wait_for_server(server, interval=0.1), "snap")
    # Booting from a snapshot that is still being saved cannot work.
    doomed = conn.compute.create_server(name="too-early", image_id=snapshot.id, flavor_id=flavor.id)
    with pytest.raises(exceptions.ResourceFailure):
        conn.compute.wait_for_server(doomed, interval=0.1, wait=30)
    doomed = conn.compute.get_server(doomed.id)
    assert doomed.status == "ERROR"
    assert "is not active" in doomed.fault["message"]


def test_it_refuses_to_stop_a_stopped_server(emulator: RunningEmulator) -> None:
    conn = connect(emulator)
    image, flavor = _image_and_flavor(conn)
    server = conn.compute.wait_for_server(
        conn.compute.create_server(name="vm", image_id=image.id, flavor_id=flavor.id), interval=0.1
    )
    conn.compute.stop_server(server)
    conn.compute.wait_for_server(server, status="SHUTOFF", interval=0.1, wait=30)
    with pytest.raises(exceptions.ConflictException, match="while it is in vm_state stopped"):
        conn.compute.stop_server(server)
    conn.compute.start_server(server)
    assert conn.compute.wait_for_server(server, interval=0.1, wait=30).status == "ACTIVE"
    conn.compute.reboot_server(server, "SOFT")
    assert conn.compute.wait_for_server(server, interval=0.1, wait=30).status == "ACTIVE"
    output = conn.compute.get_server_console_output(server, length=2)["output"]
    assert "login:" in output


def test_it_enforces_the_instance_quota_under_concurrent_requests(emulator: RunningEmulator) -> None:
    conn = connect(emulator)
    image, flavor = _image_and_flavor(conn)
    token = conn.session.get_token()
    url = f"{emulator.url}/compute/v2.1/servers"
    headers = {"X-Auth-Token": token, "OpenStack-API-Version": "compute 2.79"}

    def create(n: int) -> int:
        server = {"name": f"race-{n}", "imageRef": image.id, "flavorRef": flavor.id, "networks": "auto"}
        return requests.post(url, json={"server": server}, headers=headers, timeout=30).status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        codes = sorted(pool.map(create, range(12)))
    assert codes == [202] * 10 + [403] * 2
    assert len(list(conn.compute.servers())) == 10


def test_it_refuses_an_unsupported_microversion(emulator: RunningEmulator) -> None:
    token = connect(emulator).session.get_token()
    headers = {"X-Auth-Token": token, "OpenStack-API-Version": "compute 2.200"}
    response = requests.get(f"{emulator.url}/compute/v2.1/servers", headers=headers, timeout=10)
    assert response.status_code == 406
    assert "maximum is 2.93" in response.text
