"""Content-Security-Policy on every response: scripts and style sheets come from the portal only.

Pages hold no inline script, no inline event handler and no <style> element (behaviour lives in
``static/portal``, wired by data attributes); only ``style`` attributes are allowed, for the widths of
progress bars and the like. settings.CONTENT_SECURITY_POLICY is the policy ("" sends none).
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.policy = settings.CONTENT_SECURITY_POLICY

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if self.policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = self.policy
        return response
