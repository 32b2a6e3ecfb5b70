"""Neutron v2.0: networks, subnets, server ports, floating IPs (with Neutron's OverQuota 409), quotas.

Creating networks, subnets and routers: neutron_routers.py."""

from __future__ import annotations

import ipaddress
import os
import time
import uuid
from typing import Any

from emulator.http import ApiError, Auth, Request, Response, Router, iso, neutron_error, paginate
from emulator.store import Cloud

PREFIX = "/network"
render_error = neutron_error
router = Router()
EXTENSIONS = ["external-net", "router", "quotas", "quota_details", "security-group", "port-security"]
FIXED_QUOTAS = {"network": 100, "subnet": 100, "subnetpool": -1, "port": 500, "router": 10, "rbac_policy": 10}


def versions(request: Request) -> Response | None:
    if request.path not in ("", "/"):
        return None
    link = [{"rel": "self", "href": f"{request.base_url}{PREFIX}/v2.0/"}]
    return Response(200, {"versions": [{"id": "v2.0", "status": "CURRENT", "links": link}]})


def _stamp(doc: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    created = iso(record["created"])
    return {
        **doc,
        "tags": [],
        "created_at": created,
        "updated_at": iso(record.get("updated", record["created"])),
    }


def _filtered(docs: list[dict[str, Any]], request: Request, keys: tuple[str, ...]) -> list[dict[str, Any]]:
    for key in keys:
        value = request.arg(key)
        if value is not None:
            docs = [doc for doc in docs if str(doc.get(key)).lower() == value.lower()]
    return docs


def _listing(name: str, docs: list[dict[str, Any]], request: Request, keys: tuple[str, ...]) -> Response:
    page, _next = paginate(_filtered(docs, request, keys), request)
    return Response(200, {name: page})


def _project(request: Request) -> str:
    assert request.auth is not None and request.auth.project_id is not None
    return request.auth.project_id


# --- networks and subnets -----------------------------------------------------------------


def _visible_networks(cloud: Cloud, project_id: str) -> list[dict[str, Any]]:
    return [n for n in cloud.store.all("network") if n["external"] or n["project_id"] == project_id]


def network_doc(network: dict[str, Any]) -> dict[str, Any]:
    return _stamp(
        {
            "id": network["id"],
            "name": network["name"],
            "tenant_id": network["project_id"],
            "admin_state_up": True,
            "mtu": 1500 if network["external"] else 1450,
            "status": "ACTIVE",
            "subnets": network["subnets"],
            "shared": False,
            "availability_zone_hints": [],
            "availability_zones": [],
            "ipv4_address_scope": None,
            "ipv6_address_scope": None,
            "router:external": network["external"],
            "description": "",
            "port_security_enabled": True,
            "is_default": False,
            "revision_number": 1,
            "project_id": network["project_id"],
        },
        network,
    )


@router.route("GET", "/v2.0/networks")
def list_networks(cloud: Cloud, request: Request) -> Response:
    docs = [network_doc(n) for n in _visible_networks(cloud, _project(request))]
    keys = ("id", "name", "router:external", "project_id", "tenant_id", "shared", "status")
    return _listing("networks", docs, request, keys)


@router.route("GET", "/v2.0/networks/{network_id}")
def show_network(cloud: Cloud, request: Request) -> Response:
    found = [
        n for n in _visible_networks(cloud, _project(request)) if n["id"] == request.params["network_id"]
    ]
    if not found:
        raise ApiError(404, f"Network {request.params['network_id']} could not be found.", "NetworkNotFound")
    return Response(200, {"network": network_doc(found[0])})


def subnet_doc(subnet: dict[str, Any]) -> dict[str, Any]:
    return _stamp(
        {
            "id": subnet["id"],
            "name": subnet["name"],
            "tenant_id": subnet["project_id"],
            "network_id": subnet["network_id"],
            "ip_version": 4,
            "subnetpool_id": None,
            "enable_dhcp": True,
            "ipv6_ra_mode": None,
            "ipv6_address_mode": None,
            "gateway_ip": subnet["gateway_ip"],
            "cidr": subnet["cidr"],
            "allocation_pools": subnet["allocation_pools"],
            "host_routes": [],
            "dns_nameservers": [],
            "description": "",
            "service_types": [],
            "revision_number": 0,
            "project_id": subnet["project_id"],
        },
        subnet,
    )


def _visible_subnets(cloud: Cloud, project_id: str) -> list[dict[str, Any]]:
    networks = {n["id"] for n in _visible_networks(cloud, project_id)}
    return [s for s in cloud.store.all("subnet") if s["network_id"] in networks]


@router.route("GET", "/v2.0/subnets")
def list_subnets(cloud: Cloud, request: Request) -> Response:
    docs = [subnet_doc(s) for s in _visible_subnets(cloud, _project(request))]
    return _listing("subnets", docs, request, ("id", "name", "network_id", "cidr", "project_id"))


@router.route("GET", "/v2.0/subnets/{subnet_id}")
def show_subnet(cloud: Cloud, request: Request) -> Response:
    found = [s for s in _visible_subnets(cloud, _project(request)) if s["id"] == request.params["subnet_id"]]
    if not found:
        raise ApiError(404, f"Subnet {request.params['subnet_id']} could not be found.", "SubnetNotFound")
    return Response(200, {"subnet": subnet_doc(found[0])})


# --- ports (made by Nova for each server) --------------------------------------------------


def _free_address(cloud: Cloud, subnet: dict[str, Any], kind: str, field: str) -> str:
    pool = subnet["allocation_pools"][0]
    start, end = ipaddress.IPv4Address(pool["start"]), ipaddress.IPv4Address(pool["end"])
    used = {doc[field] for doc in cloud.store.all(kind) if doc.get("subnet_id") == subnet["id"]}
    address = start + 9  # leave the first few addresses, as DHCP and routers would have them
    while address <= end:
        if str(address) not in used:
            return str(address)
        address += 1
    raise ApiError(
        409,
        f"No more IP addresses available on network {subnet['network_id']}.",
        "IpAddressGenerationFailure",
    )


def find_network(cloud: Cloud, auth: Auth, network_id: str | None) -> dict[str, Any] | None:
    """A network the project may attach a server to; the project's own one when none is named."""
    own = [n for n in cloud.store.all("network", project_id=auth.project_id) if not n["external"]]
    if network_id is None:
        return own[0] if own else None
    return next((n for n in own if n["id"] == network_id), None)


def create_port(cloud: Cloud, auth: Auth, server_id: str, network: dict[str, Any]) -> dict[str, Any]:
    subnet = cloud.store.get("subnet", network["subnets"][0])
    assert subnet is not None
    port = {
        "id": str(uuid.uuid4()),
        "project_id": auth.project_id,
        "network_id": network["id"],
        "subnet_id": subnet["id"],
        "device_id": server_id,
        "mac_address": "fa:16:3e:" + ":".join(f"{b:02x}" for b in os.urandom(3)),
        "ip_address": _free_address(cloud, subnet, "port", "ip_address"),
        "created": time.time(),
    }
    return cloud.store.put("port", port)


def release_ports(cloud: Cloud, server_id: str) -> None:
    """Delete a server's ports; floating IPs on them stay allocated but become unassociated."""
    for port in cloud.store.all("port", device_id=server_id):
        for fip in cloud.store.all("floatingip", port_id=port["id"]):
            cloud.store.put("floatingip", {**fip, "port_id": None, "updated": time.time()})
        cloud.store.delete("port", port["id"])


def server_addresses(cloud: Cloud, server_id: str) -> dict[str, list[dict[str, Any]]]:
    """Nova's `addresses`: fixed and floating IPs by network name."""
    addresses: dict[str, list[dict[str, Any]]] = {}
    for port in cloud.store.all("port", device_id=server_id):
        network = cloud.store.get("network", port["network_id"]) or {"name": port["network_id"]}
        entries = addresses.setdefault(network["name"], [])
        mac = {"OS-EXT-IPS-MAC:mac_addr": port["mac_address"]}
        entries.append({"version": 4, "addr": port["ip_address"], "OS-EXT-IPS:type": "fixed", **mac})
        for fip in cloud.store.all("floatingip", port_id=port["id"]):
            entries.append({"version": 4, "addr": fip["address"], "OS-EXT-IPS:type": "floating", **mac})
    return addresses


def port_doc(port: dict[str, Any]) -> dict[str, Any]:
    return _stamp(
        {
            "id": port["id"],
            "name": "",
            "network_id": port["network_id"],
            "tenant_id": port["project_id"],
            "mac_address": port["mac_address"],
            "admin_state_up": True,
            "status": "ACTIVE",
            "device_id": port["device_id"],
            "device_owner": port.get("device_owner", "compute:nova"),
            "fixed_ips": [{"subnet_id": port["subnet_id"], "ip_address": port["ip_address"]}],
            "allowed_address_pairs": [],
            "extra_dhcp_opts": [],
            "security_groups": [],
            "description": "",
            "binding:vnic_type": "normal",
            "port_security_enabled": True,
            "revision_number": 3,
            "project_id": port["project_id"],
        },
        port,
    )


@router.route("GET", "/v2.0/ports")
def list_ports(cloud: Cloud, request: Request) -> Response:
    docs = [port_doc(p) for p in cloud.store.all("port", project_id=_project(request))]
    keys = ("id", "device_id", "network_id", "device_owner", "mac_address", "status")
    return _listing("ports", docs, request, keys)


@router.route("GET", "/v2.0/ports/{port_id}")
def show_port(cloud: Cloud, request: Request) -> Response:
    port = cloud.store.get("port", request.params["port_id"])
    if port is None or port["project_id"] != _project(request):
        raise ApiError(404, f"Port {request.params['port_id']} could not be found.", "PortNotFound")
    return Response(200, {"port": port_doc(port)})


# --- floating IPs ------------------------------------------------------------------------


def fip_doc(cloud: Cloud, fip: dict[str, Any]) -> dict[str, Any]:
    port = cloud.store.get("port", fip["port_id"]) if fip.get("port_id") else None
    details = None
    if port:
        keys = ("network_id", "mac_address", "device_id")
        details = {"name": "", "admin_state_up": True, "status": "ACTIVE", "device_owner": "compute:nova"}
        details.update({k: port[k] for k in keys})
    return _stamp(
        {
            "id": fip["id"],
            "tenant_id": fip["project_id"],
            "floating_ip_address": fip["address"],
            "floating_network_id": fip["network_id"],
            "router_id": None,
            "port_id": port["id"] if port else None,
            "fixed_ip_address": port["ip_address"] if port else None,
            "status": "ACTIVE" if port else "DOWN",
            "project_id": fip["project_id"],
            "description": fip.get("description", ""),
            "port_details": details,
            "revision_number": fip.get("revision", 0),
        },
        fip,
    )


def _quota(cloud: Cloud, project_id: str) -> dict[str, Any]:
    return cloud.store.get("quota", project_id) or {}


@router.route("GET", "/v2.0/floatingips")
def list_fips(cloud: Cloud, request: Request) -> Response:
    docs = [fip_doc(cloud, f) for f in cloud.store.all("floatingip", project_id=_project(request))]
    keys = ("id", "port_id", "floating_ip_address", "floating_network_id", "fixed_ip_address", "status")
    return _listing("floatingips", docs, request, keys)


@router.route("POST", "/v2.0/floatingips")
def create_fip(cloud: Cloud, request: Request) -> Response:
    project_id = _project(request)
    spec = request.json_object("floatingip")
    network = cloud.store.get("network", str(spec.get("floating_network_id")))
    if network is None:
        raise ApiError(
            404, f"Network {spec.get('floating_network_id')} could not be found.", "NetworkNotFound"
        )
    if not network["external"]:
        raise ApiError(
            400, f"Bad floatingip request: Network {network['id']} is not a valid external network."
        )
    with cloud.store.transaction():
        limit = _quota(cloud, project_id).get("floatingip", 50)
        if 0 <= limit <= len(cloud.store.all("floatingip", project_id=project_id)):
            raise ApiError(409, "Quota exceeded for resources: ['floatingip'].", "OverQuota")
        subnet = cloud.store.get("subnet", network["subnets"][0])
        assert subnet is not None
        fip = {
            "id": str(uuid.uuid4()),
            "project_id": project_id,
            "network_id": network["id"],
            "subnet_id": subnet["id"],
            "address": _free_address(cloud, subnet, "floatingip", "address"),
            "port_id": None,
            "description": str(spec.get("description") or ""),
            "created": time.time(),
        }
        if spec.get("port_id"):
            _associate(cloud, fip, str(spec["port_id"]))
        cloud.store.put("floatingip", fip)
    return Response(201, {"floatingip": fip_doc(cloud, fip)})


def _own_fip(cloud: Cloud, request: Request) -> dict[str, Any]:
    fip = cloud.store.get("floatingip", request.params["fip_id"])
    if fip is None or fip["project_id"] != _project(request):
        raise ApiError(
            404, f"Floating IP {request.params['fip_id']} could not be found", "FloatingIPNotFound"
        )
    return fip


def _associate(cloud: Cloud, fip: dict[str, Any], port_id: str) -> None:
    port = cloud.store.get("port", port_id)
    if port is None or port["project_id"] != fip["project_id"]:
        raise ApiError(404, f"Port {port_id} could not be found.", "PortNotFound")
    other = [f for f in cloud.store.all("floatingip", port_id=port_id) if f["id"] != fip["id"]]
    if other:
        message = (
            f"Cannot associate floating IP {fip['address']} ({fip['id']}) with port {port_id} using fixed IP "
            f"{port['ip_address']}, as that fixed IP already has a floating IP on external network "
            f"{fip['network_id']}."
        )
        raise ApiError(409, message, "FloatingIPPortAlreadyAssociated")
    fip["port_id"] = port_id


@router.route("GET", "/v2.0/floatingips/{fip_id}")
def show_fip(cloud: Cloud, request: Request) -> Response:
    return Response(200, {"floatingip": fip_doc(cloud, _own_fip(cloud, request))})


@router.route("PUT", "/v2.0/floatingips/{fip_id}")
def update_fip(cloud: Cloud, request: Request) -> Response:
    spec = request.json_object("floatingip")
    with cloud.store.transaction():
        fip = _own_fip(cloud, request)
        if "port_id" in spec:
            if spec["port_id"] is None:
                fip["port_id"] = None
            else:
                _associate(cloud, fip, str(spec["port_id"]))
        if "description" in spec:
            fip["description"] = str(spec["description"] or "")
        fip["revision"] = fip.get("revision", 0) + 1
        fip["updated"] = time.time()
        cloud.store.put("floatingip", fip)
    return Response(200, {"floatingip": fip_doc(cloud, fip)})


@router.route("DELETE", "/v2.0/floatingips/{fip_id}")
def delete_fip(cloud: Cloud, request: Request) -> Response:
    cloud.store.delete("floatingip", _own_fip(cloud, request)["id"])
    return Response(204)


# --- quotas, and the few read-only lists clients look at --------------------------------


def _quota_usage(cloud: Cloud, project_id: str) -> dict[str, tuple[int, int]]:
    own = {
        "network": len(cloud.store.all("network", project_id=project_id)),
        "subnet": len(cloud.store.all("subnet", project_id=project_id)),
        "port": len(cloud.store.all("port", project_id=project_id)),
        "floatingip": len(cloud.store.all("floatingip", project_id=project_id)),
        "router": len(cloud.store.all("router", project_id=project_id)),
        "security_group": 1,
        "security_group_rule": 4,
    }
    limits = {**FIXED_QUOTAS, "security_group": 10, "security_group_rule": 100}
    limits["floatingip"] = _quota(cloud, project_id).get("floatingip", 50)
    return {key: (limit, own.get(key, 0)) for key, limit in limits.items()}


def _quota_project(request: Request) -> str:
    project_id = _project(request)
    if request.params["project_id"] != project_id:
        raise ApiError(
            403, "Non-admin is not authorized to access quotas for another project", "HTTPForbidden"
        )
    return project_id


@router.route("GET", "/v2.0/quotas/{project_id}")
def show_quota(cloud: Cloud, request: Request) -> Response:
    usage = _quota_usage(cloud, _quota_project(request))
    return Response(200, {"quota": {key: limit for key, (limit, _used) in usage.items()}})


@router.route("GET", "/v2.0/quotas/{project_id}/details")
def show_quota_details(cloud: Cloud, request: Request) -> Response:
    usage = _quota_usage(cloud, _quota_project(request))
    quota = {key: {"limit": limit, "used": used, "reserved": 0} for key, (limit, used) in usage.items()}
    return Response(200, {"quota": quota})


@router.route("GET", "/v2.0/extensions")
def list_extensions(cloud: Cloud, request: Request) -> Response:
    docs = [{"alias": a, "name": a, "description": "", "updated": "", "links": []} for a in EXTENSIONS]
    return Response(200, {"extensions": docs})


@router.route("GET", "/v2.0/security-groups")
def list_security_groups(cloud: Cloud, request: Request) -> Response:
    project_id = _project(request)
    group = {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"secgroup:{project_id}")),
        "name": "default",
        "description": "Default security group",
        "tenant_id": project_id,
        "project_id": project_id,
        "security_group_rules": [],
        "stateful": True,
        "revision_number": 1,
        "tags": [],
    }
    return _listing("security_groups", [group], request, ("id", "name"))
