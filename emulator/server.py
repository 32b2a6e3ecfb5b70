"""The emulator's WSGI app on one port (/identity, /compute, /image, /network) and how to start it."""

from __future__ import annotations

import io
import logging
import threading
import time
import traceback
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from socketserver import ThreadingMixIn
from types import ModuleType
from typing import Any
from urllib.parse import unquote

from emulator import glance, keystone, neutron, neutron_routers, nova
from emulator.http import ApiError, Request, Response, parse_query, request_id
from emulator.seed import apply_seed, load_seed
from emulator.store import Cloud, Store

log = logging.getLogger("emulator")
SERVICES: dict[str, ModuleType] = {
    "/identity": keystone,
    "/compute": nova,
    "/image": glance,
    "/network": neutron,
}
CLOUD_NAME = "canfar-emulator"
neutron.router.include(neutron_routers.routes)


def _base_url(environ: dict[str, Any]) -> str:
    host = environ.get("HTTP_HOST") or f"{environ['SERVER_NAME']}:{environ['SERVER_PORT']}"
    return f"{environ.get('wsgi.url_scheme', 'http')}://{host}"


def _read_body(environ: dict[str, Any]) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    return environ["wsgi.input"].read(length) if length > 0 else b""


def _index(request: Request) -> Response:
    """GET / says plainly that this is an emulated cloud, and where its services are."""
    services = {prefix.strip("/"): f"{request.base_url}{prefix}" for prefix in SERVICES}
    body = {
        "emulated": True,
        "description": "OpenStack-compatible emulator for development and tests; no real VMs run here.",
        "auth_url": f"{request.base_url}/identity/v3",
        "services": services,
    }
    return Response(200, body)


def _handle(cloud: Cloud, service: ModuleType, request: Request) -> Response:
    response = service.versions(request)
    if response is not None:
        return response
    if service is not keystone:
        request.auth = keystone.authenticate(cloud, request)
        if request.auth.project_id is None:
            raise ApiError(401, "The request you have made requires authentication.")
    if service is nova:
        request.microversion = nova.parse_microversion(request)
    return service.router.find(request)(cloud, request)


def make_app(cloud: Cloud) -> Any:
    """The WSGI application serving every emulated service."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path = environ.get("PATH_INFO") or "/"
        prefix = next((p for p in SERVICES if path == p or path.startswith(p + "/")), None)
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        request = Request(
            method=environ["REQUEST_METHOD"],
            path=path[len(prefix) :] if prefix else path,
            query=parse_query(environ.get("QUERY_STRING", "")),
            headers=headers,
            body=_read_body(environ),
            base_url=cloud.public_url or _base_url(environ),
        )
        service = SERVICES[prefix] if prefix else keystone
        try:
            if prefix is None:
                if path != "/":
                    raise ApiError(404, "The resource could not be found.")
                response = _index(request)
            else:
                response = _handle(cloud, service, request)
        except ApiError as err:
            response = service.render_error(err)
        except Exception:  # a bug in the emulator: answer 500 as OpenStack would, and log it
            log.error("emulator error on %s %s\n%s", request.method, path, traceback.format_exc())
            response = service.render_error(ApiError(500, "An unexpected error prevented the request."))
        rid = request_id()
        response.headers["x-openstack-request-id"] = rid
        if service is nova and prefix:
            response.headers["X-Compute-Request-Id"] = rid
            nova.with_version_headers(response, request.microversion)
        payload = response.encoded()
        out = [("Content-Type", response.content_type), ("Content-Length", str(len(payload)))]
        out += list(response.headers.items())
        start_response(f"{response.status} {_reason(response.status)}", out)
        return [payload] if request.method != "HEAD" else []

    return app


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


# HTTP/1.1 with keep-alive, as the real services speak it (eventlet's wsgi for Nova and Neutron,
# uwsgi for Keystone): a client keeps its connections open between requests, and each listener
# serves at most `connection_limit` connections at once. Past that, as Neutron with its pool of
# `wsgi_default_pool_size` (100) full, a new connection is accepted by the kernel but answered only
# when another one closes.
CONNECTION_LIMIT = 100
IDLE_SECONDS = 900.0  # Neutron's and Nova's client_socket_timeout


class _Server(ThreadingMixIn, HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: Any, limit: int, latency: float) -> None:
        super().__init__(address, _Handler)
        self.app = app
        self.slots = threading.BoundedSemaphore(limit)
        self.latency = latency
        self.open_connections = 0
        self._count_lock = threading.Lock()

    def count(self, delta: int) -> None:
        with self._count_lock:
            self.open_connections += delta


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_SECONDS
    server: _Server

    def handle(self) -> None:
        self.server.slots.acquire()  # waits, unanswered, while the listener is full
        self.server.count(+1)
        try:
            super().handle()
        finally:
            self.server.count(-1)
            self.server.slots.release()

    def _serve(self) -> None:
        try:
            size = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            size = -1
        if size < 0:
            self.send_error(400, "Bad Content-Length")
            return
        body = self.rfile.read(size) if size else b""
        path, _, query = self.path.partition("?")
        environ: dict[str, Any] = {
            "REQUEST_METHOD": self.command,
            "PATH_INFO": unquote(path),
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "SERVER_NAME": self.server.server_address[0],
            "SERVER_PORT": str(self.server.server_address[1]),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
        }
        for name, value in self.headers.items():
            key = "HTTP_" + name.upper().replace("-", "_")
            if key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                environ[key] = value
        answer: list[Any] = []
        chunks = self.server.app(environ, lambda status, headers: answer.extend([status, headers]))
        if self.server.latency:
            time.sleep(self.server.latency)
        status, headers = answer
        code, _, reason = status.partition(" ")
        self.send_response_only(int(code), reason)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Date", self.date_time_string())
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        for chunk in chunks:
            self.wfile.write(chunk)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _serve  # noqa: N815 (stdlib names)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        log.debug("%s - %s", self.address_string(), format % args)


def _listen(host: str, port: int, app: Any, limit: int, latency: float) -> tuple[_Server, threading.Thread]:
    server = _Server((host, port), app, limit, latency)
    thread = threading.Thread(target=server.serve_forever, name=f"openstack-emulator-{port}", daemon=True)
    thread.start()
    return server, thread


@dataclass
class RunningEmulator:
    """An emulator serving on a background thread."""

    url: str
    auth_url: str
    state_path: Path | None
    cloud: Cloud
    _listeners: list[tuple[_Server, threading.Thread]]

    @property
    def _thread(self) -> threading.Thread:
        return self._listeners[0][1]

    def open_connections(self) -> dict[str, int]:
        """Connections each listener holds now, by service ("all" for the one port serving every one)."""
        by_port = {
            url.rsplit(":", 1)[-1]: prefix.strip("/") for prefix, url in self.cloud.service_urls.items()
        }
        return {by_port.get(str(srv.server_port), "all"): srv.open_connections for srv, _ in self._listeners}

    def stop(self) -> None:
        for server, thread in self._listeners:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
        self.cloud.store.close()

    def wait(self) -> None:
        """Block until the server stops (Ctrl-C raises KeyboardInterrupt here)."""
        while self._thread.is_alive():
            self._thread.join(timeout=0.5)

    def clouds_yaml(self, **kwargs: Any) -> str:
        return clouds_yaml(self.auth_url, **kwargs)


def build_cloud(
    state_path: Path | None,
    seed: dict[str, Any] | Path | str | None,
    build_seconds: float,
    snapshot_seconds: float,
    public_url: str | None = None,
) -> Cloud:
    store = Store(Path(state_path) if state_path else None)
    apply_seed(store, load_seed(seed))
    return Cloud(store, build_seconds, snapshot_seconds, public_url)


def start_emulator(
    host: str = "127.0.0.1",
    port: int = 0,
    state_path: Path | None = None,
    seed: dict[str, Any] | Path | None = None,
    build_seconds: float = 3.0,
    snapshot_seconds: float = 4.0,
    public_url: str | None = None,
    *,
    latency: float = 0.0,
    connection_limit: int = CONNECTION_LIMIT,
    separate_ports: bool = False,
) -> RunningEmulator:
    """Start serving on host:port (0 picks a free port) in daemon threads; state in SQLite at state_path.

    ``latency`` delays every answer by that many seconds (a real service takes 20-300 ms).
    ``separate_ports`` also serves each service on a port of its own, as a real cloud does, and puts
    those in the catalog: clients then hold one pool of connections per service, and each service
    has its own ``connection_limit``.
    """
    cloud = build_cloud(state_path, seed, build_seconds, snapshot_seconds, public_url)
    app = make_app(cloud)
    listeners = [_listen(host, port, app, connection_limit, latency)]
    url = public_url.rstrip("/") if public_url else f"http://{host}:{listeners[0][0].server_port}"
    if separate_ports:
        for prefix in SERVICES:
            listener = _listen(host, 0, app, connection_limit, latency)
            listeners.append(listener)
            cloud.service_urls[prefix] = f"http://{host}:{listener[0].server_port}"
    return RunningEmulator(url, f"{url}/identity/v3", state_path, cloud, listeners)


def clouds_yaml(
    auth_url: str,
    name: str = CLOUD_NAME,
    username: str = "demo",
    password: str = "canfar-demo",  # noqa: S107 (the seeded demo user of a loopback emulator)
    project: str = "demo-lensing",
    region: str = "RegionOne",
) -> str:
    """A clouds.yaml that openstacksdk and the `openstack` CLI accept as is."""
    return (
        "clouds:\n"
        f"  {name}:\n"
        "    auth:\n"
        f"      auth_url: {auth_url}\n"
        f"      username: {username}\n"
        f"      password: {password}\n"
        f"      project_name: {project}\n"
        "      user_domain_name: Default\n"
        "      project_domain_name: Default\n"
        f"    region_name: {region}\n"
        "    interface: public\n"
        "    identity_api_version: 3\n"
    )
