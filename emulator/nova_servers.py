"""Nova servers: create with quotas, a lifecycle computed from timestamps, actions, delete."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from emulator import cloudinit, glance, neutron
from emulator.http import ApiError, Request, Response, iso, paginate
from emulator.nova_base import auth_of, find_flavor, link, quota, router, usage
from emulator.store import Cloud

ACTION_SECONDS = 1.0  # how long stop/start/reboot take, at most (shortened with build_seconds)
ACTIVE = {"status": "ACTIVE", "vm_state": "active", "task_state": None, "power_state": 1}
SHUTOFF = {"status": "SHUTOFF", "vm_state": "stopped", "task_state": None, "power_state": 4}


def settle(server: dict[str, Any], at: float | None = None) -> dict[str, Any]:
    """Apply a pending transition whose time has come (BUILD -> ACTIVE, stopping -> SHUTOFF, ...)."""
    pending = server.get("pending")
    moment = time.time() if at is None else at
    if pending and moment >= pending["at"]:
        server = {**server, **pending["state"], "updated": pending["at"], "pending": None}
        if server["status"] == "ACTIVE" and not server.get("launched"):
            server["launched"] = pending["at"]
    return server


def _schedule(
    cloud: Cloud, server: dict[str, Any], now_state: dict, then_state: dict, seconds: float
) -> None:
    now = time.time()
    server.update(now_state, updated=now, pending={"at": now + seconds, "state": then_state})
    cloud.store.put("server", server)


def _host_id(server: dict[str, Any]) -> str:
    return hashlib.sha224(f"emulated-host:{server['project_id']}".encode()).hexdigest()


def server_doc(cloud: Cloud, request: Request, server: dict[str, Any]) -> dict[str, Any]:
    flavor = server["flavor"]
    building = server["status"] == "BUILD"
    if request.microversion >= (2, 47):
        keys = ("vcpus", "ram", "disk", "ephemeral")
        flavor_ref: dict[str, Any] = {**{k: flavor[k] for k in keys}, "swap": 0}
        flavor_ref.update(original_name=flavor["name"], extra_specs=flavor.get("extra_specs", {}))
    else:
        flavor_ref = {"id": flavor["id"], "links": link(request, "flavors", flavor["id"], self_link=False)}
    doc: dict[str, Any] = {
        "id": server["id"],
        "name": server["name"],
        "status": server["status"],
        "tenant_id": server["project_id"],
        "user_id": server["user_id"],
        "metadata": server.get("metadata", {}),
        "hostId": "" if building or server["status"] == "ERROR" else _host_id(server),
        "image": {"id": server["image_id"], "links": link(request, "images", server["image_id"], False)},
        "flavor": flavor_ref,
        "created": iso(server["created"]),
        "updated": iso(server["updated"]),
        "addresses": {}
        if building or server["status"] == "DELETED"
        else neutron.server_addresses(cloud, server["id"]),
        "accessIPv4": "",
        "accessIPv6": "",
        "links": link(request, "servers", server["id"]),
        "OS-DCF:diskConfig": "MANUAL",
        "progress": 0,
        "OS-EXT-AZ:availability_zone": "nova",
        "config_drive": "",
        "key_name": server.get("key_name"),
        "OS-SRV-USG:launched_at": iso(server["launched"], micro=True) if server.get("launched") else None,
        "OS-SRV-USG:terminated_at": iso(server["deleted_at"], micro=True)
        if server.get("deleted_at")
        else None,
        "security_groups": [{"name": "default"}],
        "OS-EXT-STS:task_state": server["task_state"],
        "OS-EXT-STS:vm_state": server["vm_state"],
        "OS-EXT-STS:power_state": server["power_state"],
        "os-extended-volumes:volumes_attached": [],
        "locked": False,
        "locked_reason": None,
        "description": server.get("description"),
        "tags": [],
        "trusted_image_certificates": None,
        "OS-EXT-SRV-ATTR:hostname": server["hostname"],
        "server_groups": [],
    }
    if server.get("fault"):
        doc["fault"] = server["fault"]
    return doc


def _since(request: Request) -> float | None:
    """Nova's ``changes-since`` filter (an ISO 8601 time), as a POSIX timestamp."""
    text = request.arg("changes-since")
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ApiError(400, f"Invalid filter field: changes-since. Value: {text}") from exc
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _visible(cloud: Cloud, request: Request) -> list[dict[str, Any]]:
    project_id = auth_of(request).project_id
    servers = [settle(s) for s in cloud.store.all("server", project_id=project_id)]
    since = _since(request)
    if since is not None:
        # As Nova: servers changed at or after that time, deleted ones included (status DELETED).
        # Nova's "updated" has whole seconds, so compare at that precision.
        servers += cloud.store.all("deleted_server", project_id=project_id)
        servers.sort(key=lambda s: s["created"])
        servers = [s for s in servers if int(s["updated"]) >= int(since)]
    servers.reverse()  # Nova lists the newest first
    name = request.arg("name")
    if name:
        try:
            pattern = re.compile(name)
        except re.error as exc:
            raise ApiError(400, f"Invalid filter name: {exc}") from exc
        servers = [s for s in servers if pattern.search(s["name"])]
    if request.arg("status"):
        servers = [s for s in servers if s["status"] == (request.arg("status") or "").upper()]
    if request.arg("image"):
        servers = [s for s in servers if s["image_id"] == request.arg("image")]
    if request.arg("flavor"):
        servers = [s for s in servers if s["flavor"]["id"] == request.arg("flavor")]
    return servers


def _listing(request: Request, docs: list[dict[str, Any]], next_marker: str | None, path: str) -> Response:
    body: dict[str, Any] = {"servers": docs}
    if next_marker:
        href = f"{request.base_url}/compute/v2.1/{path}?limit={request.arg('limit')}&marker={next_marker}"
        body["servers_links"] = [{"rel": "next", "href": href}]
    return Response(200, body)


@router.route("GET", "/v2.1/servers")
def list_servers(cloud: Cloud, request: Request) -> Response:
    page, next_marker = paginate(_visible(cloud, request), request)
    docs = [{"id": s["id"], "name": s["name"], "links": link(request, "servers", s["id"])} for s in page]
    return _listing(request, docs, next_marker, "servers")


@router.route("GET", "/v2.1/servers/detail")
def list_servers_detail(cloud: Cloud, request: Request) -> Response:
    page, next_marker = paginate(_visible(cloud, request), request)
    return _listing(request, [server_doc(cloud, request, s) for s in page], next_marker, "servers/detail")


def _server_or_404(cloud: Cloud, request: Request) -> dict[str, Any]:
    server = cloud.store.get("server", request.params["server_id"])
    if server is None or server["project_id"] != auth_of(request).project_id:
        raise ApiError(404, f"Instance {request.params['server_id']} could not be found.")
    return settle(server)


@router.route("GET", "/v2.1/servers/{server_id}")
def show_server(cloud: Cloud, request: Request) -> Response:
    return Response(200, {"server": server_doc(cloud, request, _server_or_404(cloud, request))})


@router.route("GET", "/v2.1/servers/{server_id}/os-interface")
def list_interfaces(cloud: Cloud, request: Request) -> Response:
    server = _server_or_404(cloud, request)
    attachments = [
        {
            "net_id": port["network_id"],
            "port_id": port["id"],
            "mac_addr": port["mac_address"],
            "port_state": "ACTIVE",
            "fixed_ips": [{"subnet_id": port["subnet_id"], "ip_address": port["ip_address"]}],
        }
        for port in cloud.store.all("port", device_id=server["id"])
    ]
    return Response(200, {"interfaceAttachments": attachments})


def _requested_networks(cloud: Cloud, request: Request, spec: Any) -> list[dict[str, Any]]:
    auth = auth_of(request)
    if spec == "none":
        return []
    if spec in (None, "auto", []):
        network = neutron.find_network(cloud, auth, None)
        return [network] if network else []
    if not isinstance(spec, list):
        raise ApiError(400, f"Invalid input for field/attribute networks. Value: {spec}. Not a list")
    networks = []
    for item in spec:
        net_id = item.get("uuid") if isinstance(item, dict) else None
        if not net_id:
            raise ApiError(400, "Bad networks format: network uuid is not in proper format")
        network = neutron.find_network(cloud, auth, str(net_id))
        if network is None:
            raise ApiError(400, f"Network {net_id} could not be found.")
        networks.append(network)
    return networks


def _over_quota(cloud: Cloud, project_id: str, flavor: dict[str, Any]) -> str | None:
    limit, used = quota(cloud, project_id), usage(cloud, project_id)
    asked = {"instances": 1, "cores": flavor["vcpus"], "ram": flavor["ram"]}
    for resource, amount in asked.items():
        if 0 <= limit[resource] < used[resource] + amount:
            return (
                f"Quota exceeded for {resource}: Requested {amount}, but already used {used[resource]} "
                f"of {limit[resource]} {resource}"
            )
    return None


def _build_fault(server: dict[str, Any], image: dict[str, Any], flavor: dict[str, Any]) -> str | None:
    """Why a build fails, for requests Nova accepts but cannot carry out."""
    if glance.status(image) != "active":
        return f"Build of instance {server['id']} aborted: Image {image['id']} is not active."
    if flavor["disk"] < image["min_disk"]:
        return (
            f"Build of instance {server['id']} aborted: Flavor's disk is too small for requested image. "
            f"Flavor disk is {flavor['disk'] * 1024**3} bytes, "
            f"minimum size is {image['min_disk'] * 1024**3} bytes."
        )
    return None


@router.route("POST", "/v2.1/servers")
def create_server(cloud: Cloud, request: Request) -> Response:
    auth = auth_of(request)
    spec = request.json_object("server")
    name = spec.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ApiError(
            400, "Invalid input for field/attribute name. Value: None. None is not of type 'string'"
        )
    if not spec.get("flavorRef"):
        raise ApiError(400, "Invalid input for field/attribute server. 'flavorRef' is a required property")
    if not spec.get("imageRef"):
        raise ApiError(400, "Missing imageRef attribute")
    flavor = find_flavor(cloud, str(spec["flavorRef"]).rsplit("/", 1)[-1])
    if flavor is None:
        raise ApiError(400, f"Flavor {spec['flavorRef']} could not be found.")
    image_id = str(spec["imageRef"]).rsplit("/", 1)[-1]
    image = glance.visible_image(cloud, auth, image_id)
    if image is None:
        raise ApiError(400, f"Image {image_id} could not be found.")
    key_name = spec.get("key_name")
    if key_name is not None and not cloud.store.get("keypair", f"{auth.user_id}/{key_name}"):
        raise ApiError(400, "Invalid key_name provided.")
    networks = _requested_networks(cloud, request, spec.get("networks"))
    now = time.time()
    server_id = str(uuid.uuid4())
    server: dict[str, Any] = {
        "id": server_id,
        "name": name,
        "hostname": re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63] or "server",
        "project_id": auth.project_id,
        "user_id": auth.user_id,
        "image_id": image_id,
        "flavor": flavor,
        "key_name": key_name,
        "metadata": {str(k): str(v) for k, v in (spec.get("metadata") or {}).items()},
        "description": spec.get("description"),
        "user_data": cloudinit.decode_user_data(spec.get("user_data")),
        "created": now,
        "fault": None,
    }
    with cloud.store.transaction():
        message = _over_quota(cloud, auth.project_id or "", flavor)
        if message:
            raise ApiError(403, message)
        fault = _build_fault(server, image, flavor)
        then: dict[str, Any]
        if fault:
            then = {"status": "ERROR", "vm_state": "error", "task_state": None, "power_state": 0}
            then["fault"] = {"code": 500, "created": iso(now + cloud.build_seconds), "message": fault}
        else:
            then = ACTIVE
            for network in networks:
                neutron.create_port(cloud, auth, server_id, network)
        building = {"status": "BUILD", "vm_state": "building", "task_state": "scheduling", "power_state": 0}
        _schedule(cloud, server, building, then, cloud.build_seconds)
    body = {
        "id": server["id"],
        "links": link(request, "servers", server_id),
        "OS-DCF:diskConfig": "MANUAL",
        "security_groups": [{"name": "default"}],
        "adminPass": base64.b64encode(os.urandom(9)).decode(),
    }
    location = f"{request.base_url}/compute/v2.1/servers/{server['id']}"
    return Response(202, {"server": body}, {"Location": location})


@router.route("DELETE", "/v2.1/servers/{server_id}")
def delete_server(cloud: Cloud, request: Request) -> Response:
    with cloud.store.transaction():
        server = _server_or_404(cloud, request)
        neutron.release_ports(cloud, server["id"])
        cloud.store.delete("server", server["id"])
        # Kept for changes-since listings, as Nova keeps deleted instances (soft-deleted rows).
        now = time.time()
        gone = {"status": "DELETED", "vm_state": "deleted", "task_state": None, "power_state": 0}
        cloud.store.put(
            "deleted_server", {**server, **gone, "updated": now, "deleted_at": now, "pending": None}
        )
    return Response(204)


def _conflict(server: dict[str, Any], action: str) -> ApiError:
    return ApiError(
        409, f"Cannot '{action}' instance {server['id']} while it is in vm_state {server['vm_state']}"
    )


@router.route("POST", "/v2.1/servers/{server_id}/action")
def server_action(cloud: Cloud, request: Request) -> Response:
    body = request.json()
    if not isinstance(body, dict) or len(body) != 1:
        raise ApiError(400, "Malformed request body")
    ((action, args),) = body.items()
    with cloud.store.transaction():
        server = _server_or_404(cloud, request)
        seconds = min(ACTION_SECONDS, cloud.build_seconds)
        if action == "os-stop":
            if server["vm_state"] not in ("active", "error"):
                raise _conflict(server, "stop")
            _schedule(cloud, server, {"task_state": "powering-off"}, SHUTOFF, seconds)
        elif action == "os-start":
            if server["vm_state"] != "stopped":
                raise _conflict(server, "start")
            _schedule(cloud, server, {"task_state": "powering-on"}, ACTIVE, seconds)
        elif action == "reboot":
            kind = str((args or {}).get("type", "SOFT")).upper()
            if kind not in ("SOFT", "HARD"):
                raise ApiError(400, f"Invalid input for field/attribute type. Value: {kind}.")
            if server["vm_state"] not in ("active", "stopped", "error") or (
                kind == "SOFT" and server["vm_state"] != "active"
            ):
                raise _conflict(server, "reboot")
            status = "REBOOT" if kind == "SOFT" else "HARD_REBOOT"
            task = "reboot_started" if kind == "SOFT" else "reboot_started_hard"
            _schedule(cloud, server, {"status": status, "task_state": task}, ACTIVE, seconds)
        elif action == "createImage":
            return _create_image(cloud, request, server, args)
        elif action == "os-getConsoleOutput":
            if server["vm_state"] == "building":
                raise _conflict(server, "get_console_output")
            return Response(200, {"output": _console(cloud, server, (args or {}).get("length"))})
        else:
            raise ApiError(400, f"There is no such action: {action}")
    return Response(202)


def _create_image(cloud: Cloud, request: Request, server: dict[str, Any], args: Any) -> Response:
    if not isinstance(args, dict) or not isinstance(args.get("name"), str) or not args["name"]:
        raise ApiError(
            400, "Invalid input for field/attribute name. Value: None. None is not of type 'string'"
        )
    if server["vm_state"] not in ("active", "stopped"):
        raise _conflict(server, "createImage")
    image_id = glance.create_snapshot(
        cloud, auth_of(request), server, args["name"], args.get("metadata") or {}
    )
    if request.microversion >= (2, 45):
        return Response(202, {"image_id": image_id})
    return Response(202, None, {"Location": f"{request.base_url}/image/v2/images/{image_id}"})


def _console(cloud: Cloud, server: dict[str, Any], length: Any) -> str:
    image = cloud.store.get("image", server["image_id"])
    lines = cloudinit.console_lines(server, image, time.time(), max(0.05, cloud.build_seconds / 3))
    if length is not None:
        try:
            lines = lines[-int(length) :] if int(length) > 0 else []
        except (TypeError, ValueError) as exc:
            raise ApiError(400, f"Invalid input for field/attribute length. Value: {length}.") from exc
    return "\n".join(lines)
