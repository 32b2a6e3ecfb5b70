"""Glance v2: images with properties and visibility; snapshots go queued -> saving -> active."""

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


def visible_image(cloud: Cloud, auth: Auth, image_id: str) -> dict[str, Any] | None:
    image = cloud.store.get("image", image_id)
    if image is None:
        return None
    if image["visibility"] in ("public", "community") or image["owner"] == auth.project_id:
        return image
    return None


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
    images = [
        image_doc(image)
        for image in reversed(cloud.store.all("image"))  # Glance lists the newest first
        if visible_image(cloud, request.auth, image["id"])
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
