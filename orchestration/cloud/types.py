"""The project's own view of cloud objects (never SDK objects outside this package)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class ProjectInfo:
    id: str
    name: str
    description: str = ""


@dataclass(frozen=True)
class AppCredential:
    id: str
    secret: str
    project_id: str
    expires_at: datetime | None


@dataclass(frozen=True)
class FlavorInfo:
    id: str
    name: str
    vcpus: int
    ram_mb: int
    disk_gb: int
    ephemeral_gb: int


@dataclass(frozen=True)
class ImageInfo:
    id: str
    name: str
    status: str
    size: int | None
    is_snapshot: bool
    created_at: datetime | None
    source_server_id: str
    default_user: str
    min_disk_gb: int
    visibility: str


@dataclass(frozen=True)
class ServerInfo:
    id: str
    name: str
    status: str
    task_state: str
    flavor_id: str
    flavor_name: str
    image_id: str
    key_name: str
    fixed_ips: list[str] = field(default_factory=list)
    floating_ips: list[str] = field(default_factory=list)
    created_at: datetime | None = None
    fault: str = ""
    updated: str = ""  # the cloud's own "updated" timestamp, as it wrote it (for changes-since)


@dataclass(frozen=True)
class KeyPairInfo:
    name: str
    fingerprint: str
    public_key: str
    type: str


@dataclass(frozen=True)
class FloatingIPInfo:
    id: str
    address: str
    status: str
    port_id: str
    fixed_address: str


@dataclass(frozen=True)
class QuotaInfo:
    instances: tuple[int, int]  # (used, limit); limit -1 means unlimited
    cores: tuple[int, int]
    ram_mb: tuple[int, int]
    floating_ips: tuple[int, int]
