"""The same checks against the emulator and the real OpenStack: what the portal relies on.

Each check is written from what the real services do (openstack-recordings/, INTEGRATION.md);
the emulator passes them too, so the fast tests that use it mean something.
"""

from __future__ import annotations

import http.client
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from keystoneauth1 import exceptions as ks_exc
from openstack import exceptions as os_exc

from orchestration.cloud.client import connect_with_app_credential, connect_with_password
from orchestration.cloud.errors import CredentialsRejected, QuotaExceeded
from tests.cloud.conformance.conftest import Site


def _portal_client(site: Site, project: str = "proj-a") -> Any:
    conn = site.sdk(project)
    try:
        project_id = conn.current_project_id
    finally:
        conn.close()
    return connect_with_password(site.auth_url, "alice", "alicepass", project_id=project_id)


def _until(check: Any, what: str, timeout: float = 180) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def test_keystone_speaks_http11_and_keeps_the_connection_open(site: Site) -> None:
    url = urlsplit(site.auth_url)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    try:
        conn.request("GET", url.path)
        first = conn.getresponse()
        first.read()
        socket_before = conn.sock
        conn.request("GET", url.path)
        second = conn.getresponse()
        body = second.read()
    finally:
        conn.close()
    assert (first.version, first.status, second.status) == (11, 200, 200)
    assert not first.will_close and socket_before is not None
    assert b'"v3' in body  # Keystone's version document


def test_a_deleted_application_credential_is_404_and_an_expired_one_401(site: Site) -> None:
    conn = site.sdk()
    user = conn.current_user_id
    expires = datetime.now(UTC) + timedelta(seconds=5)
    short = conn.identity.create_application_credential(
        user=user, name=f"conf-short-{uuid.uuid4().hex[:8]}", expires_at=expires.strftime("%Y-%m-%dT%H:%M:%S")
    )
    gone = conn.identity.create_application_credential(user=user, name=f"conf-gone-{uuid.uuid4().hex[:8]}")
    conn.identity.delete_application_credential(user, gone.id)
    try:
        deleted = connect_with_app_credential(site.auth_url, gone.id, gone.secret)
        with pytest.raises(CredentialsRejected, match="expired or were revoked") as caught:
            deleted.servers()
        cause = caught.value.__cause__
        assert getattr(cause, "http_status", None) == 404
        assert "Could not find Application Credential" in str(cause)
        while datetime.now(UTC) < expires + timedelta(seconds=1):
            time.sleep(0.2)
        expired = connect_with_app_credential(site.auth_url, short.id, short.secret)
        with pytest.raises(CredentialsRejected) as caught:
            expired.servers()
        assert isinstance(caught.value.__cause__, ks_exc.Unauthorized)
    finally:
        conn.identity.delete_application_credential(user, short.id)
        conn.close()


def test_a_project_without_quotas_of_its_own_has_a_stock_novas_and_neutrons(site: Site) -> None:
    conn = site.sdk("proj-b")
    try:
        limits = conn.compute.get_limits().absolute
        net = conn.network.get_quota(conn.current_project_id)
    finally:
        conn.close()
    assert (limits.instances, limits.total_cores, limits.total_ram, limits.keypairs) == (10, 20, 51200, 100)
    assert (net.floating_ips, net.networks, net.subnets, net.ports, net.routers) == (50, 100, 100, 500, 10)
    assert (net.security_groups, net.security_group_rules) == (10, 100)


def test_a_launch_is_building_then_active_and_changes_since_reports_its_deletion(site: Site) -> None:
    client = _portal_client(site)
    image = next(i for i in client.images() if i.name == "canfar-ubuntu-20.04")
    flavor = next(f for f in client.flavors() if f.name == "c2-7.5gb-31")
    name = f"conf-{uuid.uuid4().hex[:8]}"
    made = client.create_server(name, image.id, flavor.id, None)
    try:
        assert made.status == "BUILD"  # Nova's 202 reply has no status; the portal says BUILD
        active = _until(lambda: (s := client.server(made.id)).status == "ACTIVE" and s, "ACTIVE")
        assert active.fixed_ips and active.updated
        changed = client.servers(changes_since=active.updated)
        assert made.id in [s.id for s in changed]
    finally:
        client.delete_server(made.id)
    listing = _until(
        lambda: [
            s
            for s in client.servers(changes_since=active.updated)
            if s.id == made.id and s.status == "DELETED"
        ],
        "the deletion in changes-since",
    )
    assert listing[0].name == name
    assert made.id not in [s.id for s in client.servers()]
    with pytest.raises(os_exc.NotFoundException, match="could not be found"):
        client.conn.compute.get_server(made.id)


def test_a_second_floating_ip_over_quota_is_neutrons_409_and_a_sentence(site: Site) -> None:
    client = _portal_client(site)  # proj-a: floating IP quota 1
    first = client.allocate_floating_ip()
    try:
        with pytest.raises(QuotaExceeded) as caught:
            client.allocate_floating_ip()
        assert str(caught.value) == (
            "Could not allocate a floating IP. The project's floating IP quota (1) is used up. "
            "Release one or ask for a larger quota."
        )
        raw = caught.value.__cause__.__cause__  # the SDK's exception under the portal's
        assert getattr(raw, "status_code", None) == 409
        body = raw.response.json()  # type: ignore[union-attr]
        assert body["NeutronError"]["type"] == "OverQuota"
        assert body["NeutronError"]["message"] == "Quota exceeded for resources: ['floatingip']."
    finally:
        client.release_floating_ip(first.id)
    assert first.id not in [f.id for f in client.floating_ips()]


def test_a_project_network_subnet_and_router_with_its_interface(site: Site) -> None:
    conn = site.sdk("proj-b")
    tag = f"conf-{uuid.uuid4().hex[:8]}"
    net = conn.network.create_network(name=f"{tag}-net")
    try:
        sub = conn.network.create_subnet(
            network_id=net.id, ip_version=4, cidr="192.0.2.0/24", name=f"{tag}-sub"
        )
        assert (sub.gateway_ip, sub.allocation_pools) == (
            "192.0.2.1",
            [{"start": "192.0.2.2", "end": "192.0.2.254"}],
        )
        public = conn.network.find_network("public")
        assert public is not None and public.is_router_external
        router = conn.network.create_router(
            name=f"{tag}-rtr", external_gateway_info={"network_id": public.id}
        )
        try:
            gateway = router.external_gateway_info
            assert gateway["network_id"] == public.id and gateway["external_fixed_ips"][0]["ip_address"]
            added = conn.network.add_interface_to_router(router, subnet_id=sub.id)
            assert added["subnet_id"] == sub.id and added["port_id"]
            ports = list(conn.network.ports(device_id=router.id))
            assert [p.fixed_ips[0]["ip_address"] for p in ports] == ["192.0.2.1"]
            with pytest.raises(os_exc.ConflictException):  # a subnet with a router port stays
                conn.network.delete_subnet(sub.id)
            conn.network.remove_interface_from_router(router, subnet_id=sub.id)
            assert list(conn.network.ports(device_id=router.id)) == []
        finally:
            conn.network.delete_router(router.id, ignore_missing=True)
    finally:
        conn.network.delete_network(net.id, ignore_missing=True)
        conn.close()


def test_an_unknown_server_is_novas_404_in_its_own_words(site: Site) -> None:
    conn = site.sdk()
    missing = str(uuid.uuid4())
    try:
        response = conn.compute.get(f"/servers/{missing}")
    finally:
        conn.close()
    assert response.status_code == 404
    assert response.json() == {
        "itemNotFound": {"code": 404, "message": f"Instance {missing} could not be found."}
    }
