"""Load the seed (users, projects, images, flavors, networks, quotas) into a fresh store.

Seeded ids are derived from names (uuid5), so they stay the same across fresh state files.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

from emulator.store import Store

DEFAULT_SEED = Path(__file__).with_name("seed.yaml")
NAMESPACE = uuid.UUID("5a1c2f0e-3b1d-4c51-9a57-cafe0000cafe")
SERVICE_PROJECT = uuid.uuid5(NAMESPACE, "project:service").hex
# A stock Nova and Neutron (nova.conf [quota], neutron.conf [quotas]); seed.yaml gives CANFAR's.
DEFAULT_QUOTAS = {"instances": 10, "cores": 20, "ram": 51200, "key_pairs": 100, "floatingip": 50}


class SeedError(ValueError):
    """The seed file is missing something or has a wrong value."""


def stable_id(kind: str, name: str, hex32: bool = False) -> str:
    value = uuid.uuid5(NAMESPACE, f"{kind}:{name}")
    return value.hex if hex32 else str(value)


def hash_secret(secret: str, salt: str | None = None) -> str:
    """salt$hash (PBKDF2-SHA256); only this is stored, never the secret."""
    salt = salt or os.urandom(8).hex()
    digest = hashlib.pbkdf2_hmac("sha256", secret.encode(), salt.encode(), 10_000).hex()
    return f"{salt}${digest}"


def check_secret(secret: str, stored: str) -> bool:
    salt, _, _digest = stored.partition("$")
    return hash_secret(secret, salt) == stored


def load_seed(seed: dict[str, Any] | Path | str | None) -> dict[str, Any]:
    if seed is None:
        seed = DEFAULT_SEED
    if isinstance(seed, (str, Path)):
        try:
            seed = yaml.safe_load(Path(seed).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise SeedError(f"cannot read seed {seed}: {exc}") from exc
    if not isinstance(seed, dict):
        raise SeedError("the seed must be a mapping")
    for key in ("projects", "users", "images", "flavors"):
        if not isinstance(seed.get(key), list):
            raise SeedError(f"the seed needs a list of {key}")
    return seed


def apply_seed(store: Store, seed: dict[str, Any]) -> None:
    """Fill an empty store; a store that was already seeded is left as it is."""
    if store.get_meta("seeded"):
        return
    now = time.time()
    with store.transaction():
        store.set_meta("region", str(seed.get("region", "RegionOne")))
        defaults = {**DEFAULT_QUOTAS, **(seed.get("default_quotas") or {})}
        project_ids: dict[str, str] = {}
        project_cidr = str((seed.get("project_network") or {}).get("cidr", "192.168.0.0/24"))
        for project in seed["projects"]:
            pid = stable_id("project", project["name"], hex32=True)
            project_ids[project["name"]] = pid
            store.put(
                "project", {"id": pid, "name": project["name"], "description": project.get("description", "")}
            )
            store.put("quota", {"id": pid, **defaults, **(project.get("quotas") or {})})
            _add_network(store, pid, f"{project['name']}-net", project_cidr, external=False, ts=now)
        for user in seed["users"]:
            unknown = [p for p in user.get("projects", []) if p not in project_ids]
            if unknown:
                raise SeedError(f"user {user['name']} is in unknown projects: {', '.join(unknown)}")
            store.put(
                "user",
                {
                    "id": stable_id("user", user["name"], hex32=True),
                    "name": user["name"],
                    "password": hash_secret(str(user["password"])),
                    "projects": [project_ids[p] for p in user.get("projects", [])],
                },
            )
        for image in seed["images"]:
            store.put("image", _seed_image(image, now))
        for flavor in seed["flavors"]:
            store.put("flavor", {"id": stable_id("flavor", flavor["name"]), "extra_specs": {}, **flavor})
        public = seed.get("public_network") or {}
        _add_network(
            store,
            SERVICE_PROJECT,
            public.get("name", "public"),
            public.get("cidr", "203.0.113.0/24"),
            True,
            now,
        )
        store.set_meta("seeded", "1")


def _seed_image(image: dict[str, Any], ts: float) -> dict[str, Any]:
    image_id = stable_id("image", image["name"])
    digest = hashlib.sha512(image_id.encode()).hexdigest()
    return {
        "id": image_id,
        "name": image["name"],
        "owner": SERVICE_PROJECT,
        "visibility": image.get("visibility", "public"),
        "min_disk": int(image.get("min_disk", 0)),
        "min_ram": int(image.get("min_ram", 0)),
        "properties": dict(image.get("properties") or {}),
        "created": ts,
        "active_at": ts,  # seeded images are active from the start
        "size": 3800,
        "checksum": hashlib.md5(image_id.encode(), usedforsecurity=False).hexdigest(),
        "os_hash_value": digest,
    }


def _add_network(store: Store, owner: str, name: str, cidr: str, external: bool, ts: float) -> None:
    net_id = stable_id("network", f"{owner}:{name}")
    subnet_id = stable_id("subnet", f"{owner}:{name}")
    hosts = list(ipaddress.ip_network(cidr).hosts())
    store.put(
        "network",
        {
            "id": net_id,
            "name": name,
            "project_id": owner,
            "external": external,
            "subnets": [subnet_id],
            "created": ts,
        },
    )
    store.put(
        "subnet",
        {
            "id": subnet_id,
            "name": f"{name}-subnet",
            "network_id": net_id,
            "project_id": owner,
            "cidr": cidr,
            "gateway_ip": str(hosts[0]),
            "allocation_pools": [{"start": str(hosts[1]), "end": str(hosts[-1])}],
            "created": ts,
        },
    )
