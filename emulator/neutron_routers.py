"""Neutron: creating and deleting networks and subnets, and routers with their gateway and interfaces.

What a CANFAR project is given (lib/project_networks.py of the real test cloud does the same): a
network, a subnet, and a router from the external network to it. Shapes as recorded in
openstack-recordings/06-server-create-poll-console.json. ``server.py`` adds these routes to
Neutron's router.
"""

from __future__ import annotations

import ipaddress
import os
import time
import uuid
from typing import Any

from emulator.http import ApiError, Request, Response, Router
from emulator.neutron import (
    FIXED_QUOTAS,
    _listing,
    _project,
    _stamp,
    _visible_networks,
    _visible_subnets,
    network_doc,
    subnet_doc,
)
from emulator.store import Cloud

routes = Router()


def _body(request: Request, key: str) -> dict[str, Any]:
    spec = request.json_object(key)
    name = spec.get("name", "")
    if not isinstance(name, str) or len(name) > 255:
        raise ApiError(
            400, f"Invalid input for name. Reason: '{name}' is not a valid string.", "HTTPBadRequest"
        )
    return spec


def _within_quota(cloud: Cloud, kind: str, project_id: str) -> None:
    limit = FIXED_QUOTAS.get(kind, -1)
    used = len(cloud.store.all(kind, project_id=project_id))
    if 0 <= limit <= used:
        raise ApiError(409, f"Quota exceeded for resources: ['{kind}'].", "OverQuota")


@routes.route("POST", "/v2.0/networks")
def create_network(cloud: Cloud, request: Request) -> Response:
    spec, project_id = _body(request, "network"), _project(request)
    with cloud.store.transaction():
        _within_quota(cloud, "network", project_id)
        network = {
            "id": str(uuid.uuid4()),
            "name": spec.get("name", ""),
            "project_id": project_id,
            "external": False,  # router:external needs an admin
            "subnets": [],
            "created": time.time(),
        }
        cloud.store.put("network", network)
    return Response(201, {"network": network_doc(network)})


def _own(cloud: Cloud, request: Request, kind: str, key: str, label: str) -> dict[str, Any]:
    doc = cloud.store.get(kind, request.params[key])
    if doc is None or doc["project_id"] != _project(request):
        raise ApiError(404, f"{label} {request.params[key]} could not be found.", f"{label}NotFound")
    return doc


@routes.route("DELETE", "/v2.0/networks/{network_id}")
def delete_network(cloud: Cloud, request: Request) -> Response:
    with cloud.store.transaction():
        network = _own(cloud, request, "network", "network_id", "Network")
        if cloud.store.all("port", network_id=network["id"]):
            raise ApiError(
                409,
                f"Unable to complete operation on network {network['id']}. "
                "There are one or more ports still in use on the network.",
                "NetworkInUse",
            )
        for subnet_id in network["subnets"]:
            cloud.store.delete("subnet", subnet_id)
        cloud.store.delete("network", network["id"])
    return Response(204)


@routes.route("POST", "/v2.0/subnets")
def create_subnet(cloud: Cloud, request: Request) -> Response:
    spec, project_id = _body(request, "subnet"), _project(request)
    network_id = str(spec.get("network_id") or "")
    network = next((n for n in _visible_networks(cloud, project_id) if n["id"] == network_id), None)
    if network is None or network["project_id"] != project_id:
        raise ApiError(404, f"Network {network_id} could not be found.", "NetworkNotFound")
    try:
        cidr = ipaddress.IPv4Network(str(spec.get("cidr") or ""), strict=True)
    except ValueError as exc:
        raise ApiError(
            400,
            f"Invalid input for cidr. Reason: '{spec.get('cidr')}' is not a valid IP subnet.",
            "HTTPBadRequest",
        ) from exc
    if int(spec.get("ip_version", 4)) != 4 or cidr.num_addresses < 4:
        raise ApiError(400, "Invalid input for operation: the subnet needs IPv4 and at least 4 addresses.")
    hosts = list(cidr.hosts())
    with cloud.store.transaction():
        _within_quota(cloud, "subnet", project_id)
        subnet = {
            "id": str(uuid.uuid4()),
            "name": spec.get("name", ""),
            "network_id": network_id,
            "project_id": project_id,
            "cidr": str(cidr),
            "gateway_ip": str(spec.get("gateway_ip") or hosts[0]),
            "allocation_pools": [{"start": str(hosts[1]), "end": str(hosts[-1])}],
            "created": time.time(),
        }
        cloud.store.put("subnet", subnet)
        cloud.store.put("network", {**network, "subnets": [*network["subnets"], subnet["id"]]})
    return Response(201, {"subnet": subnet_doc(subnet)})


@routes.route("DELETE", "/v2.0/subnets/{subnet_id}")
def delete_subnet(cloud: Cloud, request: Request) -> Response:
    with cloud.store.transaction():
        subnet = _own(cloud, request, "subnet", "subnet_id", "Subnet")
        if cloud.store.all("port", subnet_id=subnet["id"]):
            raise ApiError(
                409,
                f"Unable to complete operation on subnet {subnet['id']}: "
                "One or more ports have an IP allocation from this subnet.",
                "SubnetInUse",
            )
        network = cloud.store.get("network", subnet["network_id"])
        if network is not None:
            cloud.store.put(
                "network", {**network, "subnets": [s for s in network["subnets"] if s != subnet["id"]]}
            )
        cloud.store.delete("subnet", subnet["id"])
    return Response(204)


# --- routers -------------------------------------------------------------------------------


def router_doc(cloud: Cloud, router: dict[str, Any]) -> dict[str, Any]:
    gateway = None
    if router.get("gateway"):
        gw = router["gateway"]
        gateway = {
            "network_id": gw["network_id"],
            "external_fixed_ips": [{"subnet_id": gw["subnet_id"], "ip_address": gw["ip_address"]}],
            "enable_snat": True,
        }
    return _stamp(
        {
            "id": router["id"],
            "name": router["name"],
            "tenant_id": router["project_id"],
            "admin_state_up": True,
            "status": "ACTIVE",
            "external_gateway_info": gateway,
            "description": "",
            "availability_zones": [],
            "availability_zone_hints": [],
            "routes": [],
            "flavor_id": None,
            "revision_number": router.get("revision", 1),
            "project_id": router["project_id"],
        },
        router,
    )


def _gateway(cloud: Cloud, info: Any) -> dict[str, Any] | None:
    if not info:
        return None
    network_id = str(info.get("network_id") or "") if isinstance(info, dict) else ""
    network = cloud.store.get("network", network_id)
    if network is None or not network["external"]:
        raise ApiError(404, f"Network {network_id} could not be found.", "ExternalNetworkNotFound")
    subnet = cloud.store.get("subnet", network["subnets"][0])
    assert subnet is not None
    hosts = list(ipaddress.IPv4Network(subnet["cidr"]).hosts())
    taken = {r["gateway"]["ip_address"] for r in cloud.store.all("router") if r.get("gateway")}
    address = next(str(h) for h in hosts[100:] + hosts[1:100] if str(h) not in taken)
    return {"network_id": network_id, "subnet_id": subnet["id"], "ip_address": address}


@routes.route("POST", "/v2.0/routers")
def create_router(cloud: Cloud, request: Request) -> Response:
    spec, project_id = _body(request, "router"), _project(request)
    with cloud.store.transaction():
        _within_quota(cloud, "router", project_id)
        router = {
            "id": str(uuid.uuid4()),
            "name": spec.get("name", ""),
            "project_id": project_id,
            "gateway": _gateway(cloud, spec.get("external_gateway_info")),
            "created": time.time(),
        }
        cloud.store.put("router", router)
    return Response(201, {"router": router_doc(cloud, router)})


@routes.route("GET", "/v2.0/routers")
def list_routers(cloud: Cloud, request: Request) -> Response:
    docs = [router_doc(cloud, r) for r in cloud.store.all("router", project_id=_project(request))]
    return _listing("routers", docs, request, ("id", "name", "project_id", "status"))


@routes.route("GET", "/v2.0/routers/{router_id}")
def show_router(cloud: Cloud, request: Request) -> Response:
    return Response(200, {"router": router_doc(cloud, _own(cloud, request, "router", "router_id", "Router"))})


@routes.route("PUT", "/v2.0/routers/{router_id}")
def update_router(cloud: Cloud, request: Request) -> Response:
    spec = request.json_object("router")
    with cloud.store.transaction():
        router = _own(cloud, request, "router", "router_id", "Router")
        if "name" in spec:
            router["name"] = str(spec["name"])
        if "external_gateway_info" in spec:
            router["gateway"] = _gateway(cloud, spec["external_gateway_info"])
        router.update(updated=time.time(), revision=router.get("revision", 1) + 1)
        cloud.store.put("router", router)
    return Response(200, {"router": router_doc(cloud, router)})


@routes.route("DELETE", "/v2.0/routers/{router_id}")
def delete_router(cloud: Cloud, request: Request) -> Response:
    with cloud.store.transaction():
        router = _own(cloud, request, "router", "router_id", "Router")
        if cloud.store.all("port", device_id=router["id"]):
            raise ApiError(409, f"Router {router['id']} still has ports", "RouterInUse")
        cloud.store.delete("router", router["id"])
    return Response(204)


@routes.route("PUT", "/v2.0/routers/{router_id}/add_router_interface")
def add_interface(cloud: Cloud, request: Request) -> Response:
    body = request.json()
    subnet_id = str((body or {}).get("subnet_id") or "") if isinstance(body, dict) else ""
    project_id = _project(request)
    with cloud.store.transaction():
        router = _own(cloud, request, "router", "router_id", "Router")
        subnet = next((s for s in _visible_subnets(cloud, project_id) if s["id"] == subnet_id), None)
        if subnet is None:
            raise ApiError(404, f"Subnet {subnet_id} could not be found.", "SubnetNotFound")
        for port in cloud.store.all("port", device_id=router["id"]):
            if port["subnet_id"] == subnet_id:
                raise ApiError(
                    400,
                    f"Bad router request: Router already has a port on subnet {subnet_id}.",
                    "BadRequest",
                )
        port = {
            "id": str(uuid.uuid4()),
            "project_id": project_id,
            "network_id": subnet["network_id"],
            "subnet_id": subnet_id,
            "device_id": router["id"],
            "device_owner": "network:router_interface",
            "mac_address": "fa:16:3e:" + ":".join(f"{b:02x}" for b in os.urandom(3)),
            "ip_address": subnet["gateway_ip"],
            "created": time.time(),
        }
        cloud.store.put("port", port)
    return Response(200, _interface(router, port))


def _interface(router: dict[str, Any], port: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": router["id"],
        "tenant_id": router["project_id"],
        "port_id": port["id"],
        "network_id": port["network_id"],
        "subnet_id": port["subnet_id"],
        "subnet_ids": [port["subnet_id"]],
        "project_id": router["project_id"],
    }


@routes.route("PUT", "/v2.0/routers/{router_id}/remove_router_interface")
def remove_interface(cloud: Cloud, request: Request) -> Response:
    body = request.json()
    body = body if isinstance(body, dict) else {}
    with cloud.store.transaction():
        router = _own(cloud, request, "router", "router_id", "Router")
        ports = cloud.store.all("port", device_id=router["id"])
        port = next(
            (p for p in ports if p["id"] == body.get("port_id") or p["subnet_id"] == body.get("subnet_id")),
            None,
        )
        if port is None:
            raise ApiError(
                404,
                f"Router {router['id']} does not have an interface with id {body.get('port_id') or body.get('subnet_id')}",
                "RouterInterfaceNotFound",
            )
        cloud.store.delete("port", port["id"])
    return Response(200, _interface(router, port))
