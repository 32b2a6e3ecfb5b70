"""Shared HTTP helpers: requests, responses, routing, errors in each service's format, pagination."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl


class ApiError(Exception):
    """An error answered to the client; each service renders it in its own format."""

    def __init__(self, status: int, message: str, kind: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind  # Neutron's NeutronError.type, e.g. "OverQuota"


TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    409: "Conflict",
    500: "Internal Server Error",
}


@dataclass
class Auth:
    """What a validated token says about its bearer."""

    user_id: str
    user_name: str
    project_id: str | None
    project_name: str | None
    roles: list[str]
    methods: list[str]
    app_cred_id: str | None = None


@dataclass
class Request:
    method: str
    path: str  # below the service prefix, e.g. "/v2.1/servers"
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    base_url: str  # e.g. http://127.0.0.1:8774, no trailing slash
    params: dict[str, str] = field(default_factory=dict)  # from the route pattern
    auth: Auth | None = None
    microversion: tuple[int, int] = (2, 1)

    def json(self) -> Any:
        """The parsed body; a 400 with the service's usual words when it is not JSON."""
        try:
            return json.loads(self.body or b"null")
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, "Malformed request body") from exc

    def json_object(self, key: str) -> dict[str, Any]:
        """The object under `key` of a JSON body such as {"server": {...}}."""
        body = self.json()
        if not isinstance(body, dict) or not isinstance(body.get(key), dict):
            raise ApiError(400, f"Invalid input: '{key}' is a required property")
        return body[key]

    def arg(self, name: str) -> str | None:
        """A query parameter; the string "None" (sent by some clients for unset filters) counts as absent."""
        value = self.query.get(name)
        return None if value in (None, "", "None") else value


@dataclass
class Response:
    status: int
    body: Any = None  # JSON-serialisable, or bytes/str sent as is
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    def encoded(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


Handler = Callable[..., Response]  # handler(cloud, request)


class Router:
    """Method + path pattern ("/servers/{id}") to handler; unknown paths 404, wrong methods 405."""

    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        regex = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "/?$")

        def register(handler: Handler) -> Handler:
            self.routes.append((method, regex, handler))
            return handler

        return register

    def include(self, other: Router) -> None:
        """Serve ``other``'s routes too (a service split over modules), once."""
        for route in other.routes:
            if route not in self.routes:
                self.routes.append(route)

    def find(self, request: Request) -> Handler:
        path_matched = False
        for method, regex, handler in self.routes:
            match = regex.match(request.path)
            if match:
                path_matched = True
                if method == request.method:
                    request.params = match.groupdict()
                    return handler
        if path_matched:
            raise ApiError(405, "The method is not allowed for the requested URL.")
        raise ApiError(404, "The resource could not be found.")


def parse_query(query_string: str) -> dict[str, str]:
    return dict(parse_qsl(query_string, keep_blank_values=True))


def request_id() -> str:
    return f"req-{uuid.uuid4()}"


def now() -> datetime:
    return datetime.now(UTC)


def iso(ts: float, micro: bool = False) -> str:
    """OpenStack's timestamp formats: 2026-11-25T01:41:01Z or 2026-11-25T01:41:02.000000."""
    moment = datetime.fromtimestamp(ts, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") if micro else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def paginate(items: list[dict[str, Any]], request: Request) -> tuple[list[dict[str, Any]], str | None]:
    """Apply ?marker=ID&limit=N; returns the page and the marker of the next page, if any."""
    marker = request.arg("marker")
    if marker:
        ids = [item["id"] for item in items]
        if marker not in ids:
            raise ApiError(400, f"marker [{marker}] not found")
        items = items[ids.index(marker) + 1 :]
    limit_text = request.arg("limit")
    if limit_text is None:
        return items, None
    try:
        limit = int(limit_text)
    except ValueError as exc:
        raise ApiError(400, f"limit must be an integer, not {limit_text!r}") from exc
    if limit < 0:
        raise ApiError(400, "limit must be zero or positive")
    page = items[:limit]
    return page, (page[-1]["id"] if page and len(items) > limit else None)


# Error bodies, one function per service, as recorded from a real OpenStack.


def keystone_error(err: ApiError) -> Response:
    title = TITLES.get(err.status, "Error")
    return Response(err.status, {"error": {"code": err.status, "message": err.message, "title": title}})


NOVA_KEYS = {
    400: "badRequest",
    403: "forbidden",
    404: "itemNotFound",
    405: "badMethod",
    406: "notAcceptable",
    409: "conflictingRequest",
}


def nova_error(err: ApiError) -> Response:
    if err.status == 401:
        return keystone_error(err)
    key = NOVA_KEYS.get(err.status, "computeFault")
    body = {key: {"code": err.status, "message": err.message}}
    return Response(err.status, body, content_type="application/json; charset=UTF-8")


def neutron_error(err: ApiError) -> Response:
    if err.status == 401:
        return keystone_error(err)
    kind = err.kind or {400: "HTTPBadRequest", 403: "HTTPForbidden", 404: "HTTPNotFound"}.get(
        err.status, "HTTPError"
    )
    return Response(err.status, {"NeutronError": {"type": kind, "message": err.message, "detail": ""}})


def glance_error(err: ApiError) -> Response:
    if err.status == 401:
        return keystone_error(err)
    title = f"{err.status} {TITLES.get(err.status, 'Error')}"
    html = (
        f"<html>\n <head>\n  <title>{title}</title>\n </head>\n <body>\n  <h1>{title}</h1>\n"
        f"  {err.message}<br /><br />\n\n\n\n </body>\n</html>"
    )
    return Response(err.status, html, content_type="text/html; charset=UTF-8")


UNAUTHORIZED = "The request you have made requires authentication."
