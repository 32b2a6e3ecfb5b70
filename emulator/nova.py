"""Nova v2.1 (microversions up to 2.93): flavors, keypairs, limits and quotas. Servers: nova_servers.py."""

from __future__ import annotations

import base64
import hashlib
import re
import time
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from emulator import nova_servers
from emulator.http import ApiError, Request, Response, iso, nova_error, paginate
from emulator.nova_base import PREFIX, auth_of, find_flavor, link, quota, router, usage
from emulator.store import Cloud

__all__ = ["PREFIX", "nova_servers", "router"]  # nova_servers registers the server routes on `router`

MIN_VERSION, MAX_VERSION = (2, 1), (2, 93)
VARY = "OpenStack-API-Version, X-OpenStack-Nova-API-Version"
KEYPAIR_NAME = re.compile(r"^[A-Za-z0-9 _.@-]{1,255}$")


def _version_doc(request: Request) -> dict[str, Any]:
    return {
        "id": "v2.1",
        "status": "CURRENT",
        "version": f"{MAX_VERSION[0]}.{MAX_VERSION[1]}",
        "min_version": "2.1",
        "updated": "2013-07-23T11:33:21Z",
        "links": [
            {"rel": "self", "href": f"{request.base_url}{PREFIX}/v2.1/"},
            {"rel": "describedby", "type": "text/html", "href": "http://docs.openstack.org/"},
        ],
        "media-types": [
            {"base": "application/json", "type": "application/vnd.openstack.compute+json;version=2.1"}
        ],
    }


def versions(request: Request) -> Response | None:
    if request.path in ("", "/"):
        return Response(200, {"versions": [_version_doc(request)]})
    if request.path in ("/v2.1", "/v2.1/") and request.method == "GET":
        return with_version_headers(Response(200, {"version": _version_doc(request)}), MIN_VERSION)
    return None


def parse_microversion(request: Request) -> tuple[int, int]:
    """The microversion asked for in OpenStack-API-Version or X-OpenStack-Nova-API-Version."""
    value = request.headers.get("openstack-api-version", "")
    value = value.split(None, 1)[1] if value.lower().startswith("compute ") else ""
    value = value or request.headers.get("x-openstack-nova-api-version", "")
    if not value:
        return MIN_VERSION
    if value.strip() == "latest":
        return MAX_VERSION
    match = re.fullmatch(r"\s*(\d+)\.(\d+)\s*", value)
    if not match:
        raise ApiError(400, f"Invalid format for API version: {value}")
    version = (int(match.group(1)), int(match.group(2)))
    if not MIN_VERSION <= version <= MAX_VERSION:
        raise ApiError(
            406,
            f"Version {value.strip()} is not supported by the API. Minimum is 2.1 and maximum is "
            f"{MAX_VERSION[0]}.{MAX_VERSION[1]}.",
        )
    return version


def with_version_headers(response: Response, version: tuple[int, int]) -> Response:
    text = f"{version[0]}.{version[1]}"
    response.headers.update(
        {"OpenStack-API-Version": f"compute {text}", "X-OpenStack-Nova-API-Version": text, "Vary": VARY}
    )
    return response


def render_error(err: ApiError) -> Response:
    return nova_error(err)


# --- flavors -----------------------------------------------------------------------------


def flavor_doc(request: Request, flavor: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": flavor["id"],
        "name": flavor["name"],
        "ram": flavor["ram"],
        "disk": flavor["disk"],
        "swap": "",
        "OS-FLV-EXT-DATA:ephemeral": flavor["ephemeral"],
        "OS-FLV-DISABLED:disabled": False,
        "vcpus": flavor["vcpus"],
        "os-flavor-access:is_public": True,
        "rxtx_factor": 1.0,
        "links": link(request, "flavors", flavor["id"]),
        "description": flavor.get("description"),
        "extra_specs": flavor.get("extra_specs", {}),
    }


def _flavors(cloud: Cloud, request: Request) -> list[dict[str, Any]]:
    flavors = sorted(cloud.store.all("flavor"), key=lambda f: (f["vcpus"], f["ram"], f["name"]))
    for key, field in (("minDisk", "disk"), ("minRam", "ram")):
        if request.arg(key):
            flavors = [f for f in flavors if f[field] >= int(request.arg(key) or 0)]
    return flavors


@router.route("GET", "/v2.1/flavors")
def list_flavors(cloud: Cloud, request: Request) -> Response:
    page, next_marker = paginate(_flavors(cloud, request), request)
    docs = [{"id": f["id"], "name": f["name"], "links": link(request, "flavors", f["id"])} for f in page]
    return Response(200, {"flavors": docs})


@router.route("GET", "/v2.1/flavors/detail")
def list_flavors_detail(cloud: Cloud, request: Request) -> Response:
    page, _next = paginate(_flavors(cloud, request), request)
    return Response(200, {"flavors": [flavor_doc(request, f) for f in page]})


def _flavor_or_404(cloud: Cloud, request: Request) -> dict[str, Any]:
    flavor = find_flavor(cloud, request.params["flavor_id"])
    if flavor is None:
        raise ApiError(404, f"Flavor {request.params['flavor_id']} could not be found.")
    return flavor


@router.route("GET", "/v2.1/flavors/{flavor_id}")
def show_flavor(cloud: Cloud, request: Request) -> Response:
    return Response(200, {"flavor": flavor_doc(request, _flavor_or_404(cloud, request))})


@router.route("GET", "/v2.1/flavors/{flavor_id}/os-extra_specs")
def flavor_extra_specs(cloud: Cloud, request: Request) -> Response:
    return Response(200, {"extra_specs": _flavor_or_404(cloud, request).get("extra_specs", {})})


# --- keypairs (owned by the user, as in Nova, not by the project) ---------------------------


def fingerprint(public_key: str) -> str:
    """MD5 of the key blob, as Nova computes it; a 400 when the key does not parse."""
    try:
        serialization.load_ssh_public_key(public_key.strip().encode())
        blob = base64.b64decode(public_key.split()[1])
    except (ValueError, IndexError, TypeError) as exc:
        raise ApiError(400, "Keypair data is invalid: failed to generate fingerprint") from exc
    digest = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    return ":".join(digest[i : i + 2] for i in range(0, 32, 2))


def _keypair_id(user_id: str, name: str) -> str:
    return f"{user_id}/{name}"


@router.route("POST", "/v2.1/os-keypairs")
def create_keypair(cloud: Cloud, request: Request) -> Response:
    auth = auth_of(request)
    spec = request.json_object("keypair")
    name = spec.get("name")
    if not isinstance(name, str) or not KEYPAIR_NAME.match(name):
        raise ApiError(400, "Keypair data is invalid: Keypair name contains unsafe characters")
    private_key = None
    public_key = spec.get("public_key")
    if public_key is None:
        if request.microversion >= (2, 92):
            raise ApiError(
                400, "Invalid input for field/attribute keypair. 'public_key' is a required property"
            )
        key = ed25519.Ed25519PrivateKey.generate()
        private_key = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        ).decode()
        openssh = key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        public_key = f"{openssh.decode()} Generated-by-Nova"
    if not isinstance(public_key, str):
        raise ApiError(400, "Keypair data is invalid: failed to generate fingerprint")
    keypair = {
        "id": _keypair_id(auth.user_id, name),
        "name": name,
        "user_id": auth.user_id,
        "public_key": public_key,
        "fingerprint": fingerprint(public_key),
        "type": spec.get("type", "ssh"),
        "created": time.time(),
    }
    with cloud.store.transaction():
        if cloud.store.get("keypair", keypair["id"]):
            raise ApiError(409, f"Key pair '{name}' already exists.")
        owned = len(cloud.store.all("keypair", user_id=auth.user_id))
        limit = (cloud.store.get("quota", auth.project_id or "") or {}).get("key_pairs", 100)
        if 0 <= limit <= owned:
            raise ApiError(403, "Quota exceeded, too many key pairs.")
        cloud.store.put("keypair", keypair)
    doc = {k: keypair[k] for k in ("type", "name", "public_key", "fingerprint", "user_id")}
    if private_key:
        doc["private_key"] = private_key
    return Response(201 if request.microversion >= (2, 2) else 200, {"keypair": doc})


@router.route("GET", "/v2.1/os-keypairs")
def list_keypairs(cloud: Cloud, request: Request) -> Response:
    keypairs = cloud.store.all("keypair", user_id=auth_of(request).user_id)
    for keypair in keypairs:
        keypair["id"] = keypair["name"]  # pagination markers are names in Nova
    page, _next = paginate(keypairs, request)
    fields = ("name", "public_key", "fingerprint", "type")
    return Response(200, {"keypairs": [{"keypair": {k: kp[k] for k in fields}} for kp in page]})


def _keypair_or_404(cloud: Cloud, request: Request) -> dict[str, Any]:
    user_id = auth_of(request).user_id
    keypair = cloud.store.get("keypair", _keypair_id(user_id, request.params["name"]))
    if keypair is None:
        raise ApiError(404, f"Keypair {request.params['name']} not found for user {user_id}")
    return keypair


@router.route("GET", "/v2.1/os-keypairs/{name}")
def show_keypair(cloud: Cloud, request: Request) -> Response:
    kp = _keypair_or_404(cloud, request)
    doc = {k: kp[k] for k in ("name", "public_key", "fingerprint", "user_id", "type")}
    doc.update(created_at=iso(kp["created"], micro=True), deleted=False, deleted_at=None, updated_at=None)
    doc["id"] = int(hashlib.sha256(kp["id"].encode()).hexdigest()[:6], 16)
    return Response(200, {"keypair": doc})


@router.route("DELETE", "/v2.1/os-keypairs/{name}")
def delete_keypair(cloud: Cloud, request: Request) -> Response:
    cloud.store.delete("keypair", _keypair_or_404(cloud, request)["id"])
    return Response(204 if request.microversion >= (2, 2) else 202)


# --- limits and quotas -------------------------------------------------------------------


@router.route("GET", "/v2.1/limits")
def limits(cloud: Cloud, request: Request) -> Response:
    auth = auth_of(request)
    limit, used = quota(cloud, auth.project_id or ""), usage(cloud, auth.project_id or "")
    absolute = {
        "maxTotalInstances": limit["instances"],
        "maxTotalCores": limit["cores"],
        "maxTotalRAMSize": limit["ram"],
        "maxServerMeta": 128,
        "maxTotalKeypairs": limit.get("key_pairs", 100),
        "maxServerGroups": 10,
        "maxServerGroupMembers": 10,
        "totalRAMUsed": used["ram"],
        "totalCoresUsed": used["cores"],
        "totalInstancesUsed": used["instances"],
        "totalServerGroupsUsed": 0,
    }
    return Response(200, {"limits": {"rate": [], "absolute": absolute}})


def _quota_set(cloud: Cloud, request: Request, detail: bool) -> dict[str, Any]:
    auth = auth_of(request)
    project_id = request.params["project_id"]
    if project_id != auth.project_id:
        raise ApiError(403, "Policy doesn't allow os_compute_api:os-quota-sets:show to be performed.")
    limit, used = quota(cloud, project_id), usage(cloud, project_id)
    values: dict[str, tuple[int, int]] = {
        "cores": (limit["cores"], used["cores"]),
        "instances": (limit["instances"], used["instances"]),
        "key_pairs": (limit.get("key_pairs", 100), len(cloud.store.all("keypair", user_id=auth.user_id))),
        "metadata_items": (128, 0),
        "ram": (limit["ram"], used["ram"]),
        "server_group_members": (10, 0),
        "server_groups": (10, 0),
    }
    if request.microversion < (2, 57):
        values.update(injected_file_content_bytes=(10240, 0), injected_file_path_bytes=(255, 0))
        values["injected_files"] = (5, 0)
    if request.microversion < (2, 36):
        values.update(fixed_ips=(-1, 0), floating_ips=(-1, 0), security_group_rules=(-1, 0))
        values["security_groups"] = (-1, 0)
    body: dict[str, Any] = {
        k: {"limit": lim, "in_use": use, "reserved": 0} if detail else lim
        for k, (lim, use) in sorted(values.items())
    }
    return {"quota_set": {"id": project_id, **body}}


@router.route("GET", "/v2.1/os-quota-sets/{project_id}")
def show_quota(cloud: Cloud, request: Request) -> Response:
    return Response(200, _quota_set(cloud, request, detail=False))


@router.route("GET", "/v2.1/os-quota-sets/{project_id}/detail")
def show_quota_detail(cloud: Cloud, request: Request) -> Response:
    return Response(200, _quota_set(cloud, request, detail=True))


@router.route("PUT", "/v2.1/os-quota-sets/{project_id}")
def update_quota(cloud: Cloud, request: Request) -> Response:
    raise ApiError(403, "Policy doesn't allow os_compute_api:os-quota-sets:update to be performed.")
