"""HTTP routing for tests/cadc_server.py: one method per CADC service."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import secrets
import shutil
import ssl
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote, urlparse

from tests import cadc_server as cs

if TYPE_CHECKING:
    from tests.cadc_server import CadcTestServer


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _vault_path(uri: str) -> str:
    path = unquote(urlparse(uri).path).rstrip("/")
    return path or "/"


def _transfer_fields(body: bytes) -> tuple[str, str]:
    try:
        doc = ET.fromstring(body)  # noqa: S314 - loopback test input
    except ET.ParseError as exc:
        raise HttpError(400, f"bad transfer document: {exc}") from exc
    target = doc.findtext(f"{{{cs.VOSNS}}}target") or ""
    direction = doc.findtext(f"{{{cs.VOSNS}}}direction") or ""
    return target.strip(), direction.strip()


class CadcHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    cadc: CadcTestServer  # set by CadcTestServer.start()

    def log_message(self, format: str, *args: object) -> None:
        return

    # -- plumbing --------------------------------------------------------------------------------
    def setup(self) -> None:
        super().setup()
        with self.cadc.lock:
            self.cadc.connections.add(self.connection)
        self.peer_user: str | None = None
        if self.cadc.tls:
            try:
                self.connection.do_handshake()  # refuses certificates the authority did not sign
            except (ssl.SSLError, OSError):
                self.close_connection = True
                self.rfile = io.BytesIO()  # handle() then reads no request and the connection closes
                return
            cert = self.connection.getpeercert()
            for rdn in (cert or {}).get("subject", ()):
                for key, value in rdn:
                    if key == "commonName":
                        self.peer_user = value

    def finish(self) -> None:
        with self.cadc.lock:
            self.cadc.connections.discard(self.connection)
        super().finish()

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        self._body_done = False
        path, self.query = cs.split_url(self.path)
        self.cadc.requests.append((method, path))
        svc, _, rest = path.strip("/").partition("/")
        try:
            if svc == "reg" and rest == "resource-caps":
                if "reg" in self.cadc.unavailable:
                    raise HttpError(503, "registry unavailable")
                return self._send(200, self.cadc.registry_text().encode(), "text/plain")
            if svc not in cs.SERVICES:
                raise HttpError(404, "no such service")
            if rest == "capabilities":
                return self._send(200, self.cadc.capabilities_xml(svc).encode(), "text/xml")
            if svc in self.cadc.unavailable or "all" in self.cadc.unavailable:
                raise HttpError(503, f"{svc} is temporarily unavailable")
            if rest == "availability":
                body = b'<vosi:availability xmlns:vosi="http://www.ivoa.net/xml/VOSIAvailability/v1.0">'
                body += b"<vosi:available>true</vosi:available></vosi:availability>"
                return self._send(200, body, "text/xml")
            getattr(self, f"_svc_{svc}")(method, rest)
        except HttpError as err:
            headers = {"Retry-After": "0"} if err.status == 503 else {}
            if err.status == 401:
                headers["WWW-Authenticate"] = 'Basic realm="cadc"'
            self._send(err.status, err.message.encode(), "text/plain", headers)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _body_chunks(self) -> Iterator[bytes]:
        self._body_done = True
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return
                remaining = size
                while remaining:
                    data = self.rfile.read(min(remaining, cs.CHUNK))
                    remaining -= len(data)
                    yield data
                self.rfile.readline()
        remaining = int(self.headers.get("Content-Length") or 0)
        while remaining > 0:
            data = self.rfile.read(min(remaining, cs.CHUNK))
            if not data:
                raise HttpError(400, "short body")
            remaining -= len(data)
            yield data

    def _body(self) -> bytes:
        return b"".join(self._body_chunks())

    def _send(
        self,
        status: int,
        body: bytes,
        ctype: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        if not self._body_done:
            for _ in self._body_chunks():  # keep the connection usable
                pass
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self._send(303, b"", "text/plain", {"Location": location})

    def _user(self) -> str | None:
        if self.cadc.reject_credentials:
            return None
        auth = self.headers.get("Authorization", "")
        token = self.headers.get("X-CADC-DelegationToken")
        if auth.lower().startswith("bearer "):
            token = auth.split(" ", 1)[1].strip()
        cookie = self.headers.get("Cookie", "")
        if not token and "CADC_SSO=" in cookie:
            token = cookie.split("CADC_SSO=", 1)[1].split(";")[0].strip('"')
        if token:
            user = self.cadc.tokens.get(token)
            how = "token"
        elif auth.lower().startswith("basic "):
            try:
                name, _, password = base64.b64decode(auth.split(" ", 1)[1]).decode().partition(":")
            except ValueError:
                return None
            user = name if self.cadc.users.get(name) == password and password else None
            how = "basic"
        else:
            user = self.peer_user if self.peer_user in self.cadc.users else None
            how = "certificate"
        if user is not None:
            self.cadc.auth_seen.append((user, how))
        return user

    def _require_user(self) -> str:
        user = self._user()
        if user is None:
            raise HttpError(401, "authentication required or credentials rejected")
        return user

    # -- services --------------------------------------------------------------------------------
    def _svc_gms(self, method: str, rest: str) -> None:
        if method != "POST" or rest != "login":
            raise HttpError(404, "not found")
        form = cs.parse_qs_first(self._body().decode())
        user, password = form.get("username", ""), form.get("password", "")
        if not password or self.cadc.users.get(user) != password or self.cadc.reject_credentials:
            raise HttpError(401, "Login failed")
        self._send(200, self.cadc.issue_token(user).encode(), "text/plain")

    def _svc_cred(self, method: str, rest: str) -> None:
        if method != "GET" or rest != "priv/proxy":
            raise HttpError(404, "not found")
        user = self._require_user()
        try:
            days = float(self.query.get("daysValid", "10"))
        except ValueError as exc:
            raise HttpError(400, "daysValid must be a number") from exc
        if days <= 0 or days > 30:
            raise HttpError(400, "daysValid out of range")
        self._send(200, self.cadc.make_proxy_pem(user, days), "application/x-pem-file")

    def _svc_data(self, method: str, rest: str) -> None:
        raise HttpError(404, "not found")

    def _svc_raven(self, method: str, rest: str) -> None:
        if method == "POST" and rest == "locate":
            target, _ = _transfer_fields(self._body())
            if target not in self.cadc.archive_files:
                raise HttpError(404, f"not found: {target}")
            self._check_proprietary(target)
            url = f"{self.cadc.base_url}/raven/files/{quote(target)}"
            return self._send(200, self._transfer_doc(target, "pullFromVoSpace", [url]), "text/xml")
        if method in ("GET", "HEAD") and rest.startswith("files/"):
            uri = rest[len("files/") :]
            path = self.cadc.archive_files.get(uri)
            if path is None or not path.exists():
                raise HttpError(404, f"not found: {uri}")
            self._check_proprietary(uri)
            return self._stream_file(path, cs.hash_file(path), uri.rsplit("/", 1)[-1])
        raise HttpError(404, "not found")

    def _check_proprietary(self, uri: str) -> None:
        owner = self.cadc.archive_owners.get(uri)
        if owner is not None and self._require_user() != owner:
            raise HttpError(403, f"{uri} is proprietary")

    def _svc_vault(self, method: str, rest: str) -> None:
        kind, _, tail = rest.partition("/")
        if kind == "data":
            return self._vault_data(method, tail)
        user = self._require_user()
        if kind == "nodes":
            return self._vault_nodes(method, "/" + tail.strip("/"), user)
        if kind == "files" and method == "GET":
            path = "/" + tail.strip("/")
            self._check_owner(path, user)
            node = self.cadc.nodes.get(path)
            if node is None or node.is_dir:
                raise HttpError(404, "NodeNotFound")
            return self._redirect(self._preauth(path, "pullFromVoSpace", user))
        if kind == "synctrans":
            return self._vault_sync(method, tail, user)
        if kind == "transfers":
            return self._vault_async(method, tail, user)
        raise HttpError(404, "not found")

    # -- vault helpers ---------------------------------------------------------------------------
    def _check_owner(self, path: str, user: str) -> None:
        if path.split("/")[1:2] != [user]:
            raise HttpError(403, "PermissionDenied")

    def _vault_nodes(self, method: str, path: str, user: str) -> None:
        self._check_owner(path, user)
        with self.cadc.lock:
            node = self.cadc.nodes.get(path)
            if method == "GET":
                if node is None:
                    raise HttpError(404, "NodeNotFound")
                limit = self.query.get("limit")
                body = self.cadc.node_xml(node, int(limit) if limit else None, self.query.get("uri"))
                return self._send(200, body, "text/xml")
            if method == "PUT":
                doc = ET.fromstring(self._body())  # noqa: S314 - loopback test input
                is_dir = doc.get(f"{{{cs.XSINS}}}type") == "vos:ContainerNode"
                parent = self.cadc.nodes.get(path.rsplit("/", 1)[0])
                if parent is None or not parent.is_dir:
                    raise HttpError(404, "ContainerNotFound")
                if node is not None:
                    raise HttpError(409, "DuplicateNode")
                node = self.cadc.nodes[path] = cs.VNode(path, is_dir, user)
                return self._send(200, self.cadc.node_xml(node, 0), "text/xml")
            if method == "POST":
                if node is None:
                    raise HttpError(404, "NodeNotFound")
                return self._send(200, self.cadc.node_xml(node, 0), "text/xml")
            if method == "DELETE":
                if node is None:
                    raise HttpError(404, "NodeNotFound")
                if path == f"/{user}":
                    raise HttpError(403, "PermissionDenied")
                self.cadc.remove_tree(path)
                return self._send(200, b"", "text/plain")
        raise HttpError(405, "method not allowed")

    def _preauth(self, path: str, direction: str, user: str) -> str:
        key = secrets.token_urlsafe(16)
        self.cadc.preauth[key] = (path, direction, user)
        return f"{self.cadc.base_url}/vault/data/{key}/{quote(path.rsplit('/', 1)[1])}"

    def _transfer_doc(self, target: str, direction: str, endpoints: list[str]) -> bytes:
        proto = "httpsput" if direction == "pushToVoSpace" else "httpsget"
        eps = "".join(f"<vos:endpoint>{e}</vos:endpoint>" for e in endpoints)
        return (
            f'<?xml version="1.0" encoding="UTF-8"?><vos:transfer xmlns:vos="{cs.VOSNS}" version="2.1">'
            f"<vos:target>{target}</vos:target><vos:direction>{direction}</vos:direction>"
            f'<vos:protocol uri="ivo://ivoa.net/vospace/core#{proto}">{eps}</vos:protocol></vos:transfer>'
        ).encode()

    def _vault_sync(self, method: str, tail: str, user: str) -> None:
        if method == "POST" and not tail:
            target, direction = _transfer_fields(self._body())
            path = _vault_path(target)
            self._check_owner(path, user)
            node = self.cadc.nodes.get(path)
            if direction == "pushToVoSpace":
                parent = self.cadc.nodes.get(path.rsplit("/", 1)[0])
                if parent is None or not parent.is_dir:
                    raise HttpError(404, "ContainerNotFound")
                if node is not None and node.is_dir:
                    raise HttpError(409, "DuplicateNode")
            elif direction == "pullFromVoSpace":
                if node is None or node.is_dir:
                    raise HttpError(404, "NodeNotFound")
            else:
                raise HttpError(400, "InvalidArgument")
            job = cs.Job(target, direction, user, phase="EXECUTING")
            job.endpoints = [self._preauth(path, direction, user)]
            job_id = secrets.token_hex(8)
            self.cadc.jobs[job_id] = job
            return self._redirect(f"{self.cadc.base_url}/vault/synctrans/{job_id}/results/transferDetails")
        job_id, _, what = tail.partition("/")
        job = self.cadc.jobs.get(job_id)
        if job is None or job.user != user or method != "GET":
            raise HttpError(404, "no such job")
        if what == "results/transferDetails":
            return self._send(
                200,
                self._transfer_doc(job.target, job.direction, job.endpoints),
                "text/xml",
            )
        if what == "phase":
            return self._send(200, job.phase.encode(), "text/plain")
        if what == "error":
            return self._send(200, job.error.encode(), "text/plain")
        raise HttpError(404, "not found")

    def _vault_async(self, method: str, tail: str, user: str) -> None:
        if method == "POST" and not tail:
            target, direction = _transfer_fields(self._body())
            for uri in (target, direction):
                self._check_owner(_vault_path(uri), user)
            job_id = secrets.token_hex(8)
            self.cadc.jobs[job_id] = cs.Job(target, direction, user)
            return self._redirect(f"{self.cadc.base_url}/vault/transfers/{job_id}")
        job_id, _, what = tail.partition("/")
        job = self.cadc.jobs.get(job_id)
        if job is None or job.user != user:
            raise HttpError(404, "no such job")
        if method == "POST" and what == "phase":
            form = cs.parse_qs_first(self._body().decode())
            if form.get("PHASE") == "RUN" and job.phase == "PENDING":
                job.error = self.cadc.move(_vault_path(job.target), _vault_path(job.direction))
                job.phase = "ERROR" if job.error else "COMPLETED"
            return self._redirect(f"{self.cadc.base_url}/vault/transfers/{job_id}")
        if method == "GET" and what == "":
            body = f'<uws:job xmlns:uws="http://www.ivoa.net/xml/UWS/v1.0"><uws:jobId>{job_id}</uws:jobId>'
            body += f"<uws:phase>{job.phase}</uws:phase></uws:job>"
            return self._send(200, body.encode(), "text/xml")
        if method == "GET" and what == "phase":
            return self._send(200, job.phase.encode(), "text/plain")
        if method == "GET" and what == "error":
            return self._send(200, job.error.encode(), "text/plain")
        raise HttpError(404, "not found")

    def _vault_data(self, method: str, tail: str) -> None:
        key = tail.split("/", 1)[0]
        grant = self.cadc.preauth.get(key)
        if grant is None:
            raise HttpError(404, "unknown or expired transfer URL")
        path, direction, user = grant
        node = self.cadc.nodes.get(path)
        if method == "PUT" and direction == "pushToVoSpace":
            return self._receive(path, user)
        if method == "HEAD" and direction == "pushToVoSpace":
            if node is None or node.blob is None or not node.md5:
                raise HttpError(404, "no data yet")
            return self._send(200, b"", "application/octet-stream", {"digest": cs.md5_b64(node.md5)})
        if method in ("GET", "HEAD") and direction == "pullFromVoSpace":
            if node is None or node.blob is None:
                raise HttpError(404, "NodeNotFound")
            return self._stream_file(node.blob, node.md5 or "", path.rsplit("/", 1)[1])
        raise HttpError(405, "method not allowed for this transfer URL")

    def _receive(self, path: str, user: str) -> None:
        blob = self.cadc.data_dir / secrets.token_hex(12)
        digest = hashlib.md5(usedforsecurity=False)
        size = 0
        with open(blob, "wb") as out:
            for chunk in self._body_chunks():
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
        md5 = digest.hexdigest()
        sent = self.headers.get("digest")
        if sent and sent.startswith("md5=") and sent != cs.md5_b64(md5):
            blob.unlink()
            raise HttpError(412, "MD5 mismatch")
        with self.cadc.lock:
            parent = self.cadc.nodes.get(path.rsplit("/", 1)[0])
            if parent is None or not parent.is_dir:
                blob.unlink()
                raise HttpError(404, "ContainerNotFound")
            old = self.cadc.nodes.get(path)
            if old is not None and old.blob is not None:
                old.blob.unlink(missing_ok=True)
            self.cadc.nodes[path] = cs.VNode(path, False, user, size, md5, dt.datetime.now(dt.UTC), blob)
        self._send(201, b"", "text/plain", {"digest": cs.md5_b64(md5)})

    def _stream_file(self, path: object, md5: str, name: str) -> None:
        from pathlib import Path

        file_path = Path(str(path))
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(file_path.stat().st_size))
        self.send_header("Content-Disposition", f"inline; filename*=UTF-8''{quote(name)}")
        if md5:
            self.send_header("digest", cs.md5_b64(md5))
        self.end_headers()
        if self.command == "HEAD":
            return
        with open(file_path, "rb") as fh:
            shutil.copyfileobj(fh, self.wfile, cs.CHUNK)
