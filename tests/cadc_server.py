"""A local HTTP server speaking enough of CADC's protocols for the real clients.

Registry, VOSI capabilities/availability, login (UMS), proxy certificates (CDP), a VOSpace 2.1
vault (nodes, sync and async transfers, files, pre-authorised data URLs) and the storage-inventory
locate/files endpoints that `cadcdata` uses. Point `cadcutils`, `vos` and `cadcdata` at it with
`point_clients_at(server, monkeypatch, tmp_path)`.

Switches: `server.unavailable` (a set of service names, or "all") answers 503;
`server.reject_credentials` answers 401 to every authenticated call.

`CadcTestServer(tls=True)` serves HTTPS instead, as CADC does, with its own certificate authority:
proxy certificates it issues are signed by that authority and identify their user when presented as
client certificates (TLS with certificate, as `vos --cert` and the portal's workers use it).
`point_clients_at` adds the authority to the CA bundle requests verifies servers with.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import os
import secrets
import shutil
import socket
import ssl
import tempfile
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlparse

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

VOSNS = "http://www.ivoa.net/xml/VOSpace/v2.0"
XSINS = "http://www.w3.org/2001/XMLSchema-instance"
PROP = "ivo://ivoa.net/vospace/core#"
VAULT_AUTHORITY = "vos://cadc.nrc.ca!vault"
CHUNK = 1024 * 1024

SM_CERT = "ivo://ivoa.net/sso#tls-with-certificate"
SM_BASIC = "ivo://ivoa.net/sso#BasicAA"
SM_COOKIE = "ivo://ivoa.net/sso#cookie"
SM_TOKEN = "ivo://ivoa.net/sso#token"
AVAILABILITY = "ivo://ivoa.net/std/VOSI#availability"

# service name -> (resource id, [(standard id, path, security methods or None for anonymous only)])
SERVICES: dict[str, tuple[str, list[tuple[str, str, list[str] | None]]]] = {
    "gms": (
        "ivo://cadc.nrc.ca/gms",
        [("ivo://ivoa.net/std/UMS#login-0.1", "login", None)],
    ),
    "cred": (
        "ivo://cadc.nrc.ca/cred",
        [("ivo://ivoa.net/std/CDP#proxy-1.0", "priv/proxy", [SM_BASIC, SM_CERT])],
    ),
    "vault": (
        "ivo://cadc.nrc.ca/vault",
        [
            (
                "ivo://ivoa.net/std/VOSpace/v2.0#nodes",
                "nodes",
                [SM_CERT, SM_BASIC, SM_COOKIE, SM_TOKEN],
            ),
            (
                "ivo://ivoa.net/std/VOSpace#sync-2.1",
                "synctrans",
                [SM_CERT, SM_BASIC, SM_COOKIE, SM_TOKEN],
            ),
            (
                "ivo://ivoa.net/std/VOSpace/v2.0#transfers",
                "transfers",
                [SM_CERT, SM_BASIC, SM_COOKIE, SM_TOKEN],
            ),
            (
                "ivo://ivoa.net/std/VOSpace#files-proto",
                "files",
                [SM_CERT, SM_BASIC, SM_COOKIE, SM_TOKEN],
            ),
        ],
    ),
    "raven": (
        "ivo://cadc.nrc.ca/global/raven",
        [
            (
                "http://www.opencadc.org/std/storage#locate-1.0",
                "locate",
                [SM_CERT, SM_COOKIE, SM_TOKEN],
            )
        ],
    ),
    "data": ("ivo://cadc.nrc.ca/data", []),
}


@dataclass
class VNode:
    """A node of the emulated vault."""

    path: str  # "/alice/dir/file"
    is_dir: bool
    owner: str
    size: int = 0
    md5: str | None = None
    date: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    blob: Path | None = None


@dataclass
class Job:
    """A sync or async transfer job."""

    target: str
    direction: str
    user: str
    phase: str = "PENDING"
    error: str = ""
    endpoints: list[str] = field(default_factory=list)


class CadcTestServer:
    """Threaded loopback server; `start()` then use `registry_url`; `stop()` when done."""

    def __init__(
        self, users: dict[str, str] | None = None, data_dir: str | Path | None = None, tls: bool = False
    ) -> None:
        self.users = dict(users if users is not None else {"alice": "alice-password"})
        self.tls = tls
        self.auth_seen: list[tuple[str, str]] = []  # (user, how: token, basic or certificate)
        self.unavailable: set[str] = set()
        self.reject_credentials = False
        self.requests: list[tuple[str, str]] = []  # (method, path) seen, for debugging only
        self.tokens: dict[str, str] = {}
        self.archive_files: dict[str, Path] = {}
        self.archive_owners: dict[str, str] = {}  # proprietary artifacts: uri -> the user who may read it
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="cadc-server-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self.connections: set[socket.socket] = set()  # open keep-alive connections, closed by stop()
        self.nodes: dict[str, VNode] = {}
        self.jobs: dict[str, Job] = {}
        self.preauth: dict[str, tuple[str, str, str]] = {}  # key -> (path, direction, user)
        self._key: Any = None
        self._ca: tuple[Any, Any] | None = None  # (key, certificate) of the TLS authority
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        for user in self.users:
            self.add_home(user)

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> CadcTestServer:
        from tests.cadc._handler import CadcHandler  # the handler imports this module

        handler = type("Handler", (CadcHandler,), {"cadc": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        if self.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self._server_pem())
            context.verify_mode = ssl.CERT_OPTIONAL  # registry and capabilities stay anonymous
            # TLS 1.2: a refused client certificate then fails the handshake itself, so the client
            # always reads the server's alert. With TLS 1.3 the check comes after the client has sent
            # its request, and a client still writing a body can see the connection close instead.
            context.maximum_version = ssl.TLSVersion.TLSv1_2
            context.load_verify_locations(cafile=self.ca_file)
            # The handshake happens in the handler's thread (CadcHandler.setup), not in accept().
            self._httpd.socket = context.wrap_socket(
                self._httpd.socket, server_side=True, do_handshake_on_connect=False
            )
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
            # A stopped service must not keep answering on clients' persistent connections.
            with self.lock:
                for conn in list(self.connections):
                    with contextlib.suppress(OSError):
                        conn.shutdown(socket.SHUT_RDWR)
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "server not started"
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def registry_url(self) -> str:
        return f"{self.base_url}/reg/resource-caps"

    # -- state helpers ---------------------------------------------------------------------------
    def add_home(self, user: str) -> None:
        with self.lock:
            self.nodes.setdefault(f"/{user}", VNode(f"/{user}", True, user))

    def add_archive_file(self, uri: str, path: str | Path, owner: str | None = None) -> None:
        """Serve a local file as storage-inventory artifact `uri` (e.g. cadc:CFHT/1056213p.fits.fz);
        with `owner`, it is proprietary: only that user, authenticated, may locate and read it."""
        self.archive_files[uri] = Path(path)
        if owner is None:
            self.archive_owners.pop(uri, None)
        else:
            self.archive_owners[uri] = owner

    def issue_token(self, user: str) -> str:
        token = secrets.token_urlsafe(24)
        self.tokens[token] = user
        return token

    def make_proxy_pem(self, user: str, days: float, trusted: bool = True) -> bytes:
        """A certificate plus key, like cadcproxy.pem, valid for `days` (negative: expired that long ago).

        Self-signed on a plain HTTP server; with TLS, signed by the server's authority, or self-signed
        (``trusted=False``, a certificate the server does not accept).
        """
        from cryptography.hazmat.primitives import serialization

        with self.lock:
            if self._key is None:
                self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            key = self._key
        name = _name(user, "cadc")
        issuer = self._authority() if self.tls and trusted else None
        end = dt.datetime.now(dt.UTC) + dt.timedelta(days=days)
        start = min(dt.datetime.now(dt.UTC), end - dt.timedelta(days=1)) - dt.timedelta(minutes=5)
        cert = _certificate(name, key, issuer, start, end)
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        return cert.public_bytes(serialization.Encoding.PEM) + key_pem

    # -- TLS -------------------------------------------------------------------------------------
    @property
    def ca_file(self) -> str:
        """The authority's certificate (PEM): what clients must trust to talk to this server."""
        return str(self.data_dir / "tls-ca.pem")

    def _authority(self) -> tuple[Any, Any]:
        from cryptography.hazmat.primitives import serialization

        with self.lock:
            if self._ca is None:
                key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
                now = dt.datetime.now(dt.UTC)
                start, end = now - dt.timedelta(minutes=5), now + dt.timedelta(days=30)
                cert = _certificate(_name("Test CADC CA", "ca"), key, None, start, end, ca=True)
                Path(self.ca_file).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
                self._ca = (key, cert)
            return self._ca

    def _server_pem(self) -> str:
        """The server's certificate for 127.0.0.1 and its key, signed by the authority; a file name."""
        from cryptography.hazmat.primitives import serialization

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = dt.datetime.now(dt.UTC)
        start, end = now - dt.timedelta(minutes=5), now + dt.timedelta(days=30)
        cert = _certificate(_name("127.0.0.1", "server"), key, self._authority(), start, end, server=True)
        path = self.data_dir / "tls-server.pem"
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + key_pem)
        return str(path)

    def registry_text(self) -> str:
        return "".join(f"{rid} = {self.base_url}/{svc}/capabilities\n" for svc, (rid, _) in SERVICES.items())

    def capabilities_xml(self, svc: str) -> str:
        base = f"{self.base_url}/{svc}"
        caps = [(AVAILABILITY, "availability", None), *SERVICES[svc][1]]
        out = [
            '<?xml version="1.0" encoding="UTF-8"?>',
            (
                '<vosi:capabilities xmlns:vosi="http://www.ivoa.net/xml/VOSICapabilities/v1.0" '
                f'xmlns:xsi="{XSINS}" xmlns:vs="http://www.ivoa.net/xml/VODataService/v1.1">'
            ),
        ]
        for std, path, methods in caps:
            out.append(f'<capability standardID="{std}">')
            if methods is None:
                out.append(_interface(f"{base}/{path}", []))
            else:
                out.append(_interface(f"{base}/{path}", methods))
            out.append("</capability>")
        out.append("</vosi:capabilities>")
        return "\n".join(out)

    def node_xml(self, node: VNode, limit: int | None = None, start_uri: str | None = None) -> bytes:
        root = self._node_element(node, top=True)
        if node.is_dir:
            nodes_el = ET.SubElement(root, f"{{{VOSNS}}}nodes")
            if limit != 0:
                children = sorted(self.children(node.path), key=lambda n: n.path)
                uris = [VAULT_AUTHORITY + c.path for c in children]
                if start_uri:
                    wanted = unquote(start_uri)
                    idx = next((i for i, u in enumerate(uris) if u == wanted), len(uris))
                    children = children[idx:]
                if limit is not None:
                    children = children[:limit]
                for child in children:
                    nodes_el.append(self._node_element(child))
        return ET.tostring(root, encoding="utf-8", xml_declaration=True)

    def _node_element(self, node: VNode, top: bool = False) -> ET.Element:
        el = ET.Element(f"{{{VOSNS}}}node")
        el.set("uri", VAULT_AUTHORITY + node.path)
        el.set(f"{{{XSINS}}}type", "vos:ContainerNode" if node.is_dir else "vos:DataNode")
        props = ET.SubElement(el, f"{{{VOSNS}}}properties")
        values = {
            "length": str(node.size),
            "date": node.date.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3],
            "creator": f"CN={node.owner},OU=cadc,O=hia,C=ca",
        }
        if node.md5:
            values["MD5"] = node.md5
        for name, value in values.items():
            prop = ET.SubElement(props, f"{{{VOSNS}}}property", {"uri": PROP + name, "readOnly": "true"})
            prop.text = value
        return el

    def children(self, path: str) -> list[VNode]:
        prefix = path.rstrip("/") + "/"
        return [n for p, n in self.nodes.items() if p.startswith(prefix) and "/" not in p[len(prefix) :]]

    def remove_tree(self, path: str) -> None:
        prefix = path.rstrip("/") + "/"
        for p in [p for p in self.nodes if p == path or p.startswith(prefix)]:
            blob = self.nodes.pop(p).blob
            if blob is not None:
                blob.unlink(missing_ok=True)

    def move(self, src: str, dest: str) -> str:
        """Move node `src` to `dest` (into it when it is a container). Returns a UWS error or ""."""
        with self.lock:
            if src not in self.nodes:
                return "NodeNotFound"
            if dest in self.nodes and self.nodes[dest].is_dir:
                dest = dest.rstrip("/") + "/" + src.rsplit("/", 1)[1]
            if dest in self.nodes:
                return "DuplicateNode"
            parent = dest.rsplit("/", 1)[0]
            if parent not in self.nodes or not self.nodes[parent].is_dir:
                return "NodeNotFound"
            if dest.startswith(src.rstrip("/") + "/"):
                return "InvalidArgument"
            prefix = src.rstrip("/") + "/"
            for p in [p for p in self.nodes if p == src or p.startswith(prefix)]:
                node = self.nodes.pop(p)
                node.path = dest + p[len(src) :]
                self.nodes[node.path] = node
            return ""


def _interface(url: str, methods: list[str]) -> str:
    """Anonymous interface first (no securityMethod), then one listing the accepted methods."""
    anon = (
        f'<interface xsi:type="vs:ParamHTTP" role="std"><accessURL use="base">{url}</accessURL></interface>'
    )
    if not methods:
        return anon
    sms = "".join(f'<securityMethod standardID="{m}"/>' for m in methods)
    return anon + anon.replace("</accessURL>", f"</accessURL>{sms}")


def _name(common_name: str, unit: str) -> Any:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "ca"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "hia"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _certificate(
    name: Any,
    key: Any,
    issuer: tuple[Any, Any] | None,
    start: dt.datetime,
    end: dt.datetime,
    ca: bool = False,
    server: bool = False,
) -> Any:
    """An X.509 certificate for `key`, signed by `issuer` (key, certificate) or by itself."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    signer_key, issuer_name = (issuer[0], issuer[1].subject) if issuer else (key, name)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        builder = builder.add_extension(san, critical=False)
    return builder.sign(signer_key, hashes.SHA256())


DEFAULT_USERS = {"alice": "alice-pw", "bob": "bob-pw"}


@pytest.fixture
def cadc_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[CadcTestServer]:
    """A running server (users DEFAULT_USERS) with the real clients pointed at it.

    Use it elsewhere with `from tests.cadc_server import cadc_server  # noqa: F401` in a conftest.
    """
    server = CadcTestServer(users=DEFAULT_USERS, data_dir=tmp_path / "cadc-server-data").start()
    point_clients_at(server, monkeypatch, tmp_path / "home")
    yield server
    server.stop()


@pytest.fixture
def cadc_tls_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[CadcTestServer]:
    """The same over HTTPS with client certificates, the clients trusting its authority."""
    server = CadcTestServer(users=DEFAULT_USERS, data_dir=tmp_path / "cadc-tls-data", tls=True).start()
    point_clients_at(server, monkeypatch, tmp_path / "home")
    yield server
    server.stop()


def point_clients_at(server: CadcTestServer, monkeypatch: Any, home: Path) -> None:
    """Make cadcutils/vos/cadcdata use `server`, with caches under `home` (no leaks between tests)."""
    import cadcutils.util.utils as cutils
    from cadcutils.net import ws

    monkeypatch.setenv("HOME", str(home))
    # Both are computed from "~" at import time, so HOME alone is not enough.
    monkeypatch.setattr(ws, "CACHE_LOCATION", os.path.join(home, ".config", "cadc-registry"))
    monkeypatch.setattr(cutils, "CADC_CACHE_DIR", os.path.join(home, ".config"))
    monkeypatch.setattr(ws, "DEFAULT_REGISTRY", server.registry_url)
    # No PyPI version look-ups from tests.
    monkeypatch.setattr(cutils.check_version, "checked", ["cadcutils", "vos", "cadcdata"])
    if server.tls:
        # cadcutils turns requests' environment off (REQUESTS_CA_BUNDLE), so the test authority joins
        # the default bundle itself: the public authorities, as in production, plus this one.
        import certifi
        import requests.adapters

        bundle = home / "ca-bundle.pem"
        bundle.parent.mkdir(parents=True, exist_ok=True)
        bundle.write_bytes(Path(certifi.where()).read_bytes() + Path(server.ca_file).read_bytes())
        monkeypatch.setattr(requests.adapters, "DEFAULT_CA_BUNDLE_PATH", str(bundle))


def md5_b64(hexdigest: str) -> str:
    return "md5=" + base64.b64encode(bytes.fromhex(hexdigest)).decode("ascii")


def parse_qs_first(query: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}


def split_url(raw: str) -> tuple[str, dict[str, str]]:
    parsed = urlparse(raw)
    return unquote(parsed.path), parse_qs_first(parsed.query)


def hash_file(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
