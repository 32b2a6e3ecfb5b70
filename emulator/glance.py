"""Glance v2: images with properties and visibility; snapshots go queued -> saving -> active.

Image members as Glance Zed has them: only a `shared` image has members; its owner adds a project
(pending), that project accepts or rejects, the owner removes it. A member sees the image by ID
whatever its status, and in listings once it has accepted (or with `member_status`).
"""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any
from urllib.parse import urlencode

from emulator.http import ApiError, Auth, Request, Response, Router, glance_error, iso, paginate
from emulator.store import Cloud

PREFIX = "/image"
render_error = glance_error
router = Router()
LIST_PARAMS = {"limit", "marker", "sort", "sort_key", "sort_dir", "member_status", "os_hidden"}
PATCHABLE = {"name", "min_disk", "min_ram", "visibility", "protected", "tags"}


def versions(request: Request) -> Response | None:
    if request.path not in ("", "/", "/versions"):
        return None
    link = [{"rel": "self", "href": f"{request.base_url}{PREFIX}/v2/"}]
    values = [{"id": "v2.16", "status": "CURRENT", "links": link}]
    values += [{"id": f"v2.{minor}", "status": "SUPPORTED", "links": link} for minor in range(15, -1, -1)]
    return Response(300 if request.path != "/versions" else 200, {"versions": values})


def status(image: dict[str, Any], at: float | None = None) -> str:
    """Computed from timestamps, so no background work is needed and restarts lose nothing."""
    moment = time.time() if at is None else at
    if moment >= image["active_at"]:
        return "active"
    return "saving" if moment >= image.get("saving_at", 0) else "queued"


MEMBER_STATUSES = ("pending", "accepted", "rejected")


def _member(cloud: Cloud, image_id: str, project_id: str | None) -> dict[str, Any] | None:
    return cloud.store.get("image_member", f"{image_id}/{project_id}") if project_id else None


def visible_image(cloud: Cloud, auth: Auth, image_id: str) -> dict[str, Any] | None:
    image = cloud.store.get("image", image_id)
    if image is None:
        return None
    if image["visibility"] in ("public", "community") or image["owner"] == auth.project_id:
        return image
    if image["visibility"] == "shared" and _member(cloud, image_id, auth.project_id):
        return image
    return None


def _listed(cloud: Cloud, auth: Auth, image: dict[str, Any], member_status: str) -> bool:
    """Glance's default listing: public images, the project's own, and those shared with it."""
    if image["owner"] == auth.project_id:
        return True
    if image["visibility"] == "public":
        return True
    if image["visibility"] != "shared":
        return False
    member = _member(cloud, image["id"], auth.project_id)
    return member is not None and member_status in ("all", member["status"])


def create_snapshot(cloud: Cloud, auth: Auth, server: dict[str, Any], name: str, metadata: dict) -> str:
    """The image `createImage` makes: private to the project, image_type=snapshot."""
    base = cloud.store.get("image", server["image_id"]) or {"properties": {}}
    now = time.time()
    image_id = str(uuid.uuid4())
    properties = {
        **{k: v for k, v in base.get("properties", {}).items() if k != "image_type"},
        "base_image_ref": server["image_id"],
        "owner_user_name": auth.user_name,
        "owner_project_name": auth.project_name,
        "boot_roles": "reader,member",
        "instance_uuid": server["id"],
        "user_id": auth.user_id,
        "image_type": "snapshot",
        **{str(k): str(v) for k, v in (metadata or {}).items()},
    }
    cloud.store.put(
        "image",
        {
            "id": image_id,
            "name": name,
            "owner": auth.project_id,
            "visibility": "private",
            "min_disk": server["flavor"]["disk"],
            "min_ram": 0,
            "properties": properties,
            "created": now,
            "saving_at": now + cloud.snapshot_seconds / 3,
            "active_at": now + cloud.snapshot_seconds,
            "size": 117,
            "checksum": hashlib.md5(image_id.encode(), usedforsecurity=False).hexdigest(),
            "os_hash_value": hashlib.sha512(image_id.encode()).hexdigest(),
        },
    )
    return image_id


def image_doc(image: dict[str, Any]) -> dict[str, Any]:
    state = status(image)
    active = state == "active"
    doc: dict[str, Any] = {
        **image["properties"],
        "name": image["name"],
        "disk_format": "raw" if active else None,
        "container_format": "bare" if active else None,
        "visibility": image["visibility"],
        "size": image["size"] if active else None,
        "virtual_size": image["size"] if active else None,
        "status": state,
        "checksum": image["checksum"] if active else None,
        "protected": image.get("protected", False),
        "min_ram": image["min_ram"],
        "min_disk": image["min_disk"],
        "owner": image["owner"],
        "os_hidden": False,
        "os_hash_algo": "sha512" if active else None,
        "os_hash_value": image["os_hash_value"] if active else None,
        "id": image["id"],
        "created_at": iso(image["created"]),
        "updated_at": iso(image.get("updated", image["active_at"] if active else image["created"])),
        "tags": image.get("tags", []),
        "self": f"/v2/images/{image['id']}",
        "file": f"/v2/images/{image['id']}/file",
        "schema": "/v2/schemas/image",
    }
    if active:
        doc["stores"] = "fs"
    return doc


def _matches(doc: dict[str, Any], key: str, value: str) -> bool:
    if key == "id" and value.startswith("in:"):
        return doc["id"] in value[3:].split(",")
    if value.startswith("in:"):
        return str(doc.get(key)) in value[3:].split(",")
    return str(doc.get(key)) == value


@router.route("GET", "/v2/images")
def list_images(cloud: Cloud, request: Request) -> Response:
    assert request.auth is not None
    member_status = request.query.get("member_status") or "accepted"
    if member_status not in (*MEMBER_STATUSES, "all"):
        raise ApiError(400, f"Invalid status: {member_status}")
    images = [
        image_doc(image)
        for image in reversed(cloud.store.all("image"))  # Glance lists the newest first
        if _listed(cloud, request.auth, image, member_status)
        or (request.query.get("visibility") == "community" and image["visibility"] == "community")
    ]
    for key, value in request.query.items():
        if key not in LIST_PARAMS and value not in ("", "None"):
            images = [doc for doc in images if _matches(doc, key, value)]
    page, next_marker = paginate(images, request)
    query = urlencode(request.query)
    body: dict[str, Any] = {
        "images": page,
        "first": "/v2/images" + (f"?{query}" if query else ""),
        "schema": "/v2/schemas/images",
    }
    if next_marker:
        body["next"] = "/v2/images?" + urlencode({**request.query, "marker": next_marker})
    return Response(200, body)


def _image_or_404(cloud: Cloud, request: Request) -> dict[str, Any]:
    assert request.auth is not None
    image = visible_image(cloud, request.auth, request.params["image_id"])
    if image is None:
        raise ApiError(404, f"No image found with ID {request.params['image_id']}")
    return image


@router.route("GET", "/v2/images/{image_id}")
def show_image(cloud: Cloud, request: Request) -> Response:
    return Response(200, image_doc(_image_or_404(cloud, request)))


@router.route("DELETE", "/v2/images/{image_id}")
def delete_image(cloud: Cloud, request: Request) -> Response:
    assert request.auth is not None
    image = _image_or_404(cloud, request)
    if image["owner"] != request.auth.project_id:
        raise ApiError(403, "You are not permitted to delete this image.")
    if image.get("protected"):
        raise ApiError(403, f"Image {image['id']} is protected and cannot be deleted.")
    with cloud.store.transaction():
        for member in cloud.store.all("image_member", image_id=image["id"]):
            cloud.store.delete("image_member", member["id"])
        cloud.store.delete("image", image["id"])
    return Response(204)


@router.route("PATCH", "/v2/images/{image_id}")
def update_image(cloud: Cloud, request: Request) -> Response:
    """JSON-patch (application/openstack-images-v2.1-json-patch) of name and custom properties."""
    assert request.auth is not None
    image = _image_or_404(cloud, request)
    if image["owner"] != request.auth.project_id:
        raise ApiError(403, "You are not permitted to modify this image.")
    operations = request.json()
    if not isinstance(operations, list):
        raise ApiError(400, "Request body must be a JSON array of operation objects.")
    for op in operations:
        if not isinstance(op, dict) or op.get("op") not in ("add", "replace", "remove"):
            raise ApiError(400, "Operation objects must contain 'op' as one of add, replace or remove.")
        key = str(op.get("path", "")).lstrip("/")
        if key in PATCHABLE:
            if op["op"] == "remove":
                raise ApiError(403, f"Attribute '{key}' is reserved.")
            if key == "visibility" and op.get("value") not in ("public", "community", "shared", "private"):
                raise ApiError(400, f"Invalid visibility value: {op.get('value')}")
            image[key] = op.get("value")
        elif op["op"] == "remove":
            if key not in image["properties"]:
                raise ApiError(409, f"Property {key} does not exist.")
            image["properties"].pop(key)
        else:
            image["properties"][key] = str(op.get("value"))
    image["updated"] = time.time()
    cloud.store.put("image", image)
    return Response(200, image_doc(image))


# image members -------------------------------------------------------------------------------------


def member_doc(member: dict[str, Any]) -> dict[str, Any]:
    return {  # in the real Glance's order
        "member_id": member["member_id"],
        "image_id": member["image_id"],
        "status": member["status"],
        "created_at": iso(member["created"]),
        "updated_at": iso(member["updated"]),
        "schema": "/v2/schemas/member",
    }


def _body(request: Request, key: str, missing: str) -> Any:
    body = request.json() if request.body else None
    if body is None:
        raise ApiError(400, "Body expected in request.")
    if not isinstance(body, dict):
        raise ApiError(400, f'Expected a {key} in the form: {{"{key}": "{key}"}}')
    if key not in body:
        raise ApiError(400, missing)
    return body[key]


def _forbidden_unless(condition: bool, verb: str, image_id: str) -> None:
    if not condition:
        raise ApiError(403, f"Not allowed to {verb} members for image {image_id}.")


@router.route("POST", "/v2/images/{image_id}/members")
def create_member(cloud: Cloud, request: Request) -> Response:
    assert request.auth is not None
    member_id = _body(request, "member", "Member to be added not specified")
    if not member_id or not isinstance(member_id, str):
        raise ApiError(400, "Member can't be empty")
    with cloud.store.transaction():
        image = _image_or_404(cloud, request)
        owner = image["owner"] == request.auth.project_id
        _forbidden_unless(image["visibility"] == "shared" and owner, "create", image["id"])
        if _member(cloud, image["id"], member_id):
            raise ApiError(409, f"Member {member_id} is duplicated for image {image['id']}")
        now = time.time()
        member = {
            "id": f"{image['id']}/{member_id}",
            "image_id": image["id"],
            "member_id": member_id,
            "status": "pending",
            "created": now,
            "updated": now,
        }
        cloud.store.put("image_member", member)
    return Response(200, member_doc(member))


@router.route("GET", "/v2/images/{image_id}/members")
def list_members(cloud: Cloud, request: Request) -> Response:
    assert request.auth is not None
    image = _image_or_404(cloud, request)
    if image["visibility"] != "shared":
        raise ApiError(
            403,
            f"Not allowed to list members for image {image['id']}: Only shared images have members.",
        )
    members = cloud.store.all("image_member", image_id=image["id"])
    if image["owner"] != request.auth.project_id:  # a member sees only its own membership
        members = [m for m in members if m["member_id"] == request.auth.project_id]
    return Response(200, {"members": [member_doc(m) for m in members], "schema": "/v2/schemas/members"})


def _member_or_404(cloud: Cloud, request: Request, image: dict[str, Any]) -> dict[str, Any]:
    assert request.auth is not None
    member_id = request.params["member_id"]
    member = _member(cloud, image["id"], member_id)
    mine = image["owner"] == request.auth.project_id or member_id == request.auth.project_id
    if member is None or not mine:
        raise ApiError(404, f"{member_id} not found in the member list of the image {image['id']}.")
    return member


@router.route("GET", "/v2/images/{image_id}/members/{member_id}")
def show_member(cloud: Cloud, request: Request) -> Response:
    image = _image_or_404(cloud, request)
    if image["visibility"] != "shared":
        raise ApiError(404, "Only shared images have members.")
    return Response(200, member_doc(_member_or_404(cloud, request, image)))


@router.route("PUT", "/v2/images/{image_id}/members/{member_id}")
def update_member(cloud: Cloud, request: Request) -> Response:
    """Only the member itself sets its status (accepted, rejected, or back to pending)."""
    assert request.auth is not None
    status_value = _body(request, "status", "Status not specified")
    with cloud.store.transaction():
        image = _image_or_404(cloud, request)
        is_owner = image["owner"] == request.auth.project_id
        _forbidden_unless(image["visibility"] == "shared" and not is_owner, "update", image["id"])
        member = _member_or_404(cloud, request, image)
        if status_value not in MEMBER_STATUSES:
            raise ApiError(400, 'Incorrect request: Status must be "pending", "accepted" or "rejected".')
        member.update(status=status_value, updated=time.time())
        cloud.store.put("image_member", member)
    return Response(200, member_doc(member))


@router.route("DELETE", "/v2/images/{image_id}/members/{member_id}")
def delete_member(cloud: Cloud, request: Request) -> Response:
    assert request.auth is not None
    with cloud.store.transaction():
        image = _image_or_404(cloud, request)
        is_owner = image["owner"] == request.auth.project_id
        _forbidden_unless(image["visibility"] == "shared" and is_owner, "delete", image["id"])
        member = _member_or_404(cloud, request, image)
        cloud.store.delete("image_member", member["id"])
    return Response(204)
