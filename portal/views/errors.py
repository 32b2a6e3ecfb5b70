"""Error pages people see: a styled 404 and 405 with a way back, instead of Django's bare ones."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.utils.http import url_has_allowed_host_and_scheme


def way_back(request: HttpRequest) -> str:
    """The page the user came from, when it is one of ours (the Referer header is not trusted)."""
    referer = request.headers.get("Referer", "")
    if not referer or not url_has_allowed_host_and_scheme(
        referer, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return ""
    parts = urlsplit(referer)
    back = parts.path + (f"?{parts.query}" if parts.query else "")
    return "" if back == request.get_full_path() else back


def _page(request: HttpRequest, template: str, status: int, **extra: str) -> HttpResponse:
    html = render_to_string(template, {"back": way_back(request), **extra}, request=request)
    return HttpResponse(html, status=status)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler404: also used for another user's object, so it never says whether the thing exists."""
    return _page(request, "404.html", 404)


class MethodNotAllowedPage:
    """Django answers a wrong method (e.g. a GET of a POST-only URL) with an empty 405: show a page."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code != 405 or response.content or request.headers.get("HX-Request"):
            return response
        page = _page(request, "405.html", 405, method=request.method or "")
        if "Allow" in response:
            page["Allow"] = response["Allow"]
        return page
