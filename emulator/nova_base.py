"""What Nova's flavors, keypairs and quotas (nova.py) and its servers (nova_servers.py) share.

Both modules import this one and neither imports the other's internals, so there is no cycle:
nova.py, the service module the server mounts at /compute, imports nova_servers to register
the server routes on the one router.
"""

from __future__ import annotations

from typing import Any

from emulator.http import Auth, Request, Router
from emulator.store import Cloud

PREFIX = "/compute"
router = Router()
# A stock Nova's default quotas (nova.conf [quota]); a seed gives CANFAR's.
DEFAULT_QUOTA = {"instances": 10, "cores": 20, "ram": 51200, "key_pairs": 100}


def link(request: Request, kind: str, obj_id: str, self_link: bool = True) -> list[dict[str, str]]:
    links = [{"rel": "bookmark", "href": f"{request.base_url}{PREFIX}/{kind}/{obj_id}"}]
    if self_link:
        links.insert(0, {"rel": "self", "href": f"{request.base_url}{PREFIX}/v2.1/{kind}/{obj_id}"})
    return links


def auth_of(request: Request) -> Auth:
    assert request.auth is not None and request.auth.project_id is not None
    return request.auth


def find_flavor(cloud: Cloud, ref: str) -> dict[str, Any] | None:
    return cloud.store.get("flavor", ref)


def usage(cloud: Cloud, project_id: str) -> dict[str, int]:
    servers = cloud.store.all("server", project_id=project_id)
    return {
        "instances": len(servers),
        "cores": sum(s["flavor"]["vcpus"] for s in servers),
        "ram": sum(s["flavor"]["ram"] for s in servers),
    }


def quota(cloud: Cloud, project_id: str) -> dict[str, Any]:
    return {**DEFAULT_QUOTA, **(cloud.store.get("quota", project_id) or {})}
