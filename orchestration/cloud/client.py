"""CloudClient: the calls the portal makes, through openstacksdk only."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
import threading
import time
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from typing import Any

import openstack
import requests
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3
from keystoneauth1.session import TCPKeepAliveAdapter
from openstack.connection import Connection

from orchestration.cloud.errors import CloudNotFound, InvalidRequest, QuotaExceeded, quota_sentence, translate
from orchestration.cloud.types import (
    AppCredential,
    FlavorInfo,
    FloatingIPInfo,
    ImageInfo,
    KeyPairInfo,
    ProjectInfo,
    QuotaInfo,
    ServerInfo,
)

TIMEOUT = 30
# Sockets kept open per service and session: a worker runs one task at a time, so one is used at
# once; a second covers the SDK's occasional parallel call. More are opened when needed, then closed.
POOL_MAXSIZE = 2
SESSIONS_MAX = 256  # sessions kept per worker process; the least recently used one is closed first
SESSION_IDLE_SECONDS = 900  # a session unused this long is closed (its sockets with it)


def _common(auth_url: str, region: str | None, interface: str) -> dict[str, Any]:
    return {
        "auth_url": auth_url,
        "region_name": region or None,
        "interface": interface,
        "load_yaml_config": False,
        "load_envvars": False,
        "api_timeout": TIMEOUT,
    }


def connect_with_password(
    auth_url: str,
    username: str,
    password: str,
    *,
    project_id: str | None = None,
    user_domain: str = "Default",
    project_domain: str = "Default",
    region: str | None = None,
    interface: str = "public",
) -> CloudClient:
    kwargs = _common(auth_url, region, interface)
    kwargs.update(username=username, password=password, user_domain_name=user_domain)
    if project_id:
        kwargs.update(project_id=project_id, project_domain_name=project_domain)
    with translate("sign in to the cloud"):
        conn = _bounded(openstack.connect(**kwargs))
        try:
            conn.authorize()
        except BaseException:
            conn.close()
            raise
    return CloudClient(conn)


def connect_with_token(
    auth_url: str,
    token: str,
    *,
    project_id: str | None = None,
    region: str | None = None,
    interface: str = "public",
) -> CloudClient:
    kwargs = _common(auth_url, region, interface)
    kwargs.update(auth_type="v3token", token=token)
    if project_id:
        kwargs["project_id"] = project_id
    with translate("connect to the cloud"):
        conn = _bounded(openstack.connect(**kwargs))
        try:
            conn.authorize()
        except BaseException:
            conn.close()
            raise
    return CloudClient(conn)


def connect_with_app_credential(
    auth_url: str,
    credential_id: str,
    secret: str,
    *,
    region: str | None = None,
    interface: str = "public",
) -> CloudClient:
    """A client sharing this process's one session for the credential (made on first use).

    The session keeps its token until shortly before it expires (keystoneauth renews it then) and its
    sockets open between calls and tasks, so a sync signs in once per token lifetime, not once a call.
    The client must not be closed by callers: ``forget_session`` or ``close_sessions`` do that.
    All sessions share one bounded pool of sockets (``_shared_http``).
    """
    key = _session_key(auth_url, credential_id, secret, region, interface)
    with _lock:
        _close_idle()
        conn = _sessions.pop(key, None)
        if conn is None:
            auth = v3.ApplicationCredential(
                auth_url=auth_url,
                application_credential_id=credential_id,
                application_credential_secret=secret,
            )
            session = ks_session.Session(auth=auth, session=_shared_http(), timeout=TIMEOUT)
            with translate("connect to the cloud"):
                conn = Connection(session=session, region_name=region or None, interface=interface)
        _sessions[key] = conn  # most recently used last
        _last_used[key] = time.monotonic()
        while len(_sessions) > SESSIONS_MAX:
            old_key, old = _sessions.popitem(last=False)
            _last_used.pop(old_key, None)
            _close(old)
    return CloudClient(conn, shared=True)


# One session per credential and process --------------------------------------------------------

_lock = threading.Lock()
_sessions: OrderedDict[tuple[str, ...], Connection] = OrderedDict()
_last_used: dict[tuple[str, ...], float] = {}
# One HTTP connection pool for all of them: a request carries its own token, so sessions of
# different credentials can share sockets, and a worker syncing 200 projects keeps POOL_MAXSIZE
# sockets per service, not 200 times that (Neutron serves 100 connections at once in all).
_http: list[requests.Session] = []


def _shared_http() -> requests.Session:
    if not _http:
        http = requests.Session()
        adapter = TCPKeepAliveAdapter(pool_connections=8, pool_maxsize=POOL_MAXSIZE)
        http.mount("https://", adapter)
        http.mount("http://", adapter)
        _http.append(http)
    return _http[0]


def _session_key(
    auth_url: str, credential_id: str, secret: str, region: str | None, interface: str
) -> tuple[str, ...]:
    # The secret is part of the key (hashed, never kept twice): a credential replaced under the same
    # id never reuses the old session.
    digest = hashlib.sha256(secret.encode()).hexdigest()
    return (auth_url, credential_id, digest, region or "", interface)


def _bounded(conn: Connection) -> Connection:
    """Keep at most POOL_MAXSIZE idle sockets per service for this connection."""
    http = conn.session.session
    adapter = TCPKeepAliveAdapter(pool_connections=8, pool_maxsize=POOL_MAXSIZE)
    http.mount("https://", adapter)
    http.mount("http://", adapter)
    return conn


def _close(conn: Connection) -> None:
    with contextlib.suppress(OSError):  # closing idle sockets: nothing to act on
        conn.close()


def _close_idle() -> None:
    limit = time.monotonic() - SESSION_IDLE_SECONDS
    for key in [k for k, used in _last_used.items() if used < limit]:
        _last_used.pop(key, None)
        conn = _sessions.pop(key, None)
        if conn is not None:
            _close(conn)


def forget_session(credential_id: str) -> None:
    """Close the session of a credential that was revoked or replaced."""
    with _lock:
        for key in [k for k in _sessions if k[1] == credential_id]:
            _last_used.pop(key, None)
            _close(_sessions.pop(key))


def close_sessions() -> int:
    """Close every session of this process (the worker is stopping); returns how many."""
    with _lock:
        count = len(_sessions)
        while _sessions:
            _close(_sessions.popitem()[1])
        _last_used.clear()
        while _http:
            with contextlib.suppress(OSError):
                _http.pop().close()
    return count


def open_sessions() -> int:
    with _lock:
        return len(_sessions)


def _limit(value: Any) -> int:
    """A quota limit; -1 (unlimited) when the cloud does not say."""
    return -1 if value is None else int(value)


def _ts(value: Any) -> datetime | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value).replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class CloudClient:
    """One authenticated session; every method returns the project's dataclasses."""

    def __init__(self, conn: Connection, shared: bool = False) -> None:
        self.conn = conn
        self.shared = shared  # the process's session for a credential: closed by the pool, not here

    def close(self) -> None:
        """Close a one-off client's sockets (sign-in, token clients); shared sessions stay open."""
        if not self.shared:
            _close(self.conn)

    def __enter__(self) -> CloudClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def _identity(self) -> Any:
        return self.conn.identity  # always v3 here; the SDK types it as v2 | v3

    # identity ---------------------------------------------------------------
    @property
    def token(self) -> str:
        with translate("sign in to the cloud"):
            return str(self.conn.auth_token)

    def token_expiry(self) -> datetime | None:
        with translate("read the sign-in token"):
            auth: Any = self.conn.session.auth
            access = auth.get_access(self.conn.session)
        return _ts(getattr(access, "expires", None))

    def projects(self) -> list[ProjectInfo]:
        with translate("list your projects"):
            found = list(self._identity.user_projects(self.conn.current_user_id))
        return sorted(
            (ProjectInfo(p.id, p.name, p.description or "") for p in found if p.is_enabled is not False),
            key=lambda p: p.name,
        )

    def create_app_credential(self, name: str, days: int) -> AppCredential:
        expires = datetime.now(UTC) + timedelta(days=days)
        with translate("create an application credential"):
            cred = self._identity.create_application_credential(
                user=self.conn.current_user_id,
                name=name,
                description="Created by CANFAR Workbench to act for you in this project",
                expires_at=expires.strftime("%Y-%m-%dT%H:%M:%S"),
                unrestricted=False,
            )
        return AppCredential(cred.id, cred.secret, str(self.conn.current_project_id), expires)

    # compute: flavors, images ----------------------------------------------
    def flavors(self) -> list[FlavorInfo]:
        with translate("list flavors"):
            return [
                FlavorInfo(
                    f.id, f.name, int(f.vcpus or 0), int(f.ram or 0), int(f.disk or 0), int(f.ephemeral or 0)
                )
                for f in self.conn.compute.flavors(details=True)
            ]

    def images(self) -> list[ImageInfo]:
        with translate("list images"):
            return [self._image(i) for i in self.conn.image.images()]

    def image(self, image_id: str) -> ImageInfo:
        with translate("look up an image"):
            return self._image(self.conn.image.get_image(image_id))

    @staticmethod
    def _image(i: Any) -> ImageInfo:
        props = dict(i.properties or {})
        image_type = props.get("image_type") or getattr(i, "image_type", None)
        default_user = props.get("default_user") or ""
        if not default_user:
            distro = (getattr(i, "os_distro", None) or props.get("os_distro") or i.name or "").lower()
            default_user = "rocky" if "rocky" in distro else "centos" if "centos" in distro else "ubuntu"
        return ImageInfo(
            id=i.id,
            name=i.name or i.id,
            status=i.status or "unknown",
            size=i.size,
            is_snapshot=image_type == "snapshot",
            created_at=_ts(i.created_at),
            source_server_id=str(getattr(i, "instance_uuid", None) or props.get("instance_uuid") or ""),
            default_user=default_user,
            min_disk_gb=int(i.min_disk or 0),
            visibility=i.visibility or "",
        )

    def delete_image(self, image_id: str) -> None:
        with translate("delete the image"):
            self.conn.image.delete_image(image_id, ignore_missing=True)

    # compute: servers -------------------------------------------------------
    def servers(self, changes_since: str = "") -> list[ServerInfo]:
        """Every server, or with ``changes_since`` (a timestamp in the cloud's clock) only those changed
        since then, deleted ones included with status DELETED (Nova's ``changes-since``)."""
        query: dict[str, Any] = {"changes_since": changes_since} if changes_since else {}
        with translate("list servers"):
            return [self._server(s) for s in self.conn.compute.servers(details=True, **query)]

    def servers_named(self, name: str) -> list[ServerInfo]:
        """Servers with exactly this name (Nova's name filter is a regular expression)."""
        with translate("list servers"):
            found = self.conn.compute.servers(details=True, name=f"^{re.escape(name)}$")
            return [self._server(s) for s in found if s.name == name]

    def server(self, server_id: str) -> ServerInfo:
        with translate("look up the VM"):
            return self._server(self.conn.compute.get_server(server_id))

    @staticmethod
    def _server(s: Any, status: str = "UNKNOWN") -> ServerInfo:
        fixed: list[str] = []
        floating: list[str] = []
        for entries in (s.addresses or {}).values():
            for entry in entries:
                (floating if entry.get("OS-EXT-IPS:type") == "floating" else fixed).append(entry.get("addr"))
        flavor = s.flavor or {}
        fault = (s.fault or {}).get("message", "") if isinstance(s.fault, dict) else ""
        return ServerInfo(
            id=s.id,
            name=s.name,
            status=s.status or status,
            task_state=s.task_state or "",
            flavor_id=str(flavor.get("id") or ""),
            flavor_name=str(flavor.get("original_name") or flavor.get("name") or ""),
            image_id=str((s.image or {}).get("id") or ""),
            key_name=s.key_name or "",
            fixed_ips=fixed,
            floating_ips=floating,
            created_at=_ts(s.created_at),
            fault=fault,
            updated=str(s.updated_at or ""),
        )

    def create_server(
        self, name: str, image_id: str, flavor_id: str, key_name: str | None, user_data: str | None = None
    ) -> ServerInfo:
        networks = self._project_networks()
        kwargs: dict[str, Any] = {
            "name": name,
            "image_id": image_id,
            "flavor_id": flavor_id,
            "networks": [{"uuid": n} for n in networks] or "auto",
        }
        if key_name:
            kwargs["key_name"] = key_name
        if user_data:
            kwargs["user_data"] = base64.b64encode(user_data.encode()).decode()
        with translate(f"launch the VM {name}"):
            # Nova's 202 reply has no status: the server is building.
            return self._server(self.conn.compute.create_server(**kwargs), status="BUILD")

    def _project_networks(self) -> list[str]:
        with translate("find the project network"):
            nets = [n for n in self.conn.network.networks() if not n.is_router_external and not n.is_shared]
        return [nets[0].id] if nets else []

    def start_server(self, server_id: str) -> None:
        with translate("start the VM"):
            self.conn.compute.start_server(server_id)

    def stop_server(self, server_id: str) -> None:
        with translate("stop the VM"):
            self.conn.compute.stop_server(server_id)

    def reboot_server(self, server_id: str, hard: bool = False) -> None:
        with translate("reboot the VM"):
            self.conn.compute.reboot_server(server_id, "HARD" if hard else "SOFT")

    def delete_server(self, server_id: str) -> None:
        with translate("delete the VM"):
            self.conn.compute.delete_server(server_id, ignore_missing=True)

    def snapshot_server(self, server_id: str, name: str) -> str:
        with translate("snapshot the VM"):
            image = self.conn.compute.create_server_image(server_id, name, wait=False)
        image_id = getattr(image, "id", None) or (image if isinstance(image, str) else None)
        if not image_id:
            raise InvalidRequest("The cloud accepted the snapshot but did not say which image it made.")
        return str(image_id)

    def console_output(self, server_id: str, lines: int = 200) -> str:
        with translate("read the console"):
            result = self.conn.compute.get_server_console_output(server_id, length=lines)
        return str((result or {}).get("output", ""))

    # keypairs ---------------------------------------------------------------
    def keypairs(self) -> list[KeyPairInfo]:
        with translate("list key pairs"):
            return [
                KeyPairInfo(k.name, k.fingerprint or "", k.public_key or "", k.type or "ssh")
                for k in self.conn.compute.keypairs()
            ]

    def import_keypair(self, name: str, public_key: str) -> KeyPairInfo:
        with translate(f"import the key pair {name}"):
            k = self.conn.compute.create_keypair(name=name, public_key=public_key)
        return KeyPairInfo(k.name, k.fingerprint or "", k.public_key or public_key, k.type or "ssh")

    def delete_keypair(self, name: str) -> None:
        with translate("delete the key pair"):
            self.conn.compute.delete_keypair(name, ignore_missing=True)

    # floating IPs -----------------------------------------------------------
    def floating_ips(self) -> list[FloatingIPInfo]:
        with translate("list floating IPs"):
            project_id = self.conn.current_project_id
            return [
                FloatingIPInfo(
                    f.id, f.floating_ip_address, f.status or "", f.port_id or "", f.fixed_ip_address or ""
                )
                for f in self.conn.network.ips(project_id=project_id)
            ]

    def allocate_floating_ip(self) -> FloatingIPInfo:
        try:
            with translate("allocate a floating IP"):
                external = next(iter(self.conn.network.networks(is_router_external=True)), None)
                if external is None:
                    raise CloudNotFound("This cloud has no external network to allocate floating IPs from.")
                f = self.conn.network.create_ip(floating_network_id=external.id)
        except QuotaExceeded as exc:
            # Neutron names the resource but not the limit: say how many the project may have.
            limit = self.quotas().floating_ips[1]
            raise QuotaExceeded(
                "Could not allocate a floating IP. "
                + quota_sentence("Quota exceeded for resources: ['floatingip'].", {"floatingip": limit})
            ) from exc
        return FloatingIPInfo(
            f.id, f.floating_ip_address, f.status or "", f.port_id or "", f.fixed_ip_address or ""
        )

    def associate_floating_ip(self, ip_id: str, server_id: str) -> None:
        with translate("associate the floating IP"):
            port = next(iter(self.conn.network.ports(device_id=server_id)), None)
            if port is None:
                raise InvalidRequest("The VM has no network port yet; wait until it is running.")
            self.conn.network.update_ip(ip_id, port_id=port.id)

    def disassociate_floating_ip(self, ip_id: str) -> None:
        with translate("disassociate the floating IP"):
            self.conn.network.update_ip(ip_id, port_id=None)

    def release_floating_ip(self, ip_id: str) -> None:
        with translate("release the floating IP"):
            self.conn.network.delete_ip(ip_id, ignore_missing=True)

    # quotas -----------------------------------------------------------------
    def quotas(self) -> QuotaInfo:
        with translate("read the quotas"):
            limits = self.conn.compute.get_limits().absolute
            net = self.conn.network.get_quota(str(self.conn.current_project_id), details=True)
        fip: dict[str, Any] = (
            net.floating_ips if isinstance(net.floating_ips, dict) else {"used": 0, "limit": net.floating_ips}
        )
        return QuotaInfo(
            instances=(int(limits.instances_used or 0), _limit(limits.instances)),
            cores=(int(limits.total_cores_used or 0), _limit(limits.total_cores)),
            ram_mb=(int(limits.total_ram_used or 0), _limit(limits.total_ram)),
            floating_ips=(
                int(fip.get("used") or 0),
                _limit(fip.get("limit")),
            ),
        )
