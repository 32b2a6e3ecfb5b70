"""The emulator's WSGI app on one port (/identity, /compute, /image, /network) and how to start it."""

from __future__ import annotations

import logging
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from socketserver import ThreadingMixIn
from types import ModuleType
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from emulator import glance, keystone, neutron, nova
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


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        log.debug("%s - %s", self.address_string(), format % args)


@dataclass
class RunningEmulator:
    """An emulator serving on a background thread."""

    url: str
    auth_url: str
    state_path: Path | None
    cloud: Cloud
    _server: _ThreadingServer
    _thread: threading.Thread

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
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
) -> RunningEmulator:
    """Start serving on host:port (0 picks a free port) in a daemon thread; state in SQLite at state_path."""
    cloud = build_cloud(state_path, seed, build_seconds, snapshot_seconds, public_url)
    server = make_server(
        host, port, make_app(cloud), server_class=_ThreadingServer, handler_class=_QuietHandler
    )
    url = public_url.rstrip("/") if public_url else f"http://{host}:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, name="openstack-emulator", daemon=True)
    thread.start()
    return RunningEmulator(url, f"{url}/identity/v3", state_path, cloud, server, thread)


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
