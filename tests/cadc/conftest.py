"""Fixtures: a local CADC server and the real clients pointed at it."""

from tests.cadc_server import cadc_server, cadc_tls_server

__all__ = ["cadc_server", "cadc_tls_server"]
