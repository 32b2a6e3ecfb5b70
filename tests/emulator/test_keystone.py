"""Keystone details the clients rely on: discovery, token validate/revoke, catalog URLs, expiry."""

from __future__ import annotations

import time

import requests

from emulator.server import RunningEmulator
from tests.emulator.conftest import connect

PASSWORD_AUTH = {
    "auth": {
        "identity": {
            "methods": ["password"],
            "password": {"user": {"name": "demo", "password": "canfar-demo", "domain": {"name": "Default"}}},
        },
        "scope": {"project": {"name": "demo-survey", "domain": {"name": "Default"}}},
    }
}


def _token(emulator: RunningEmulator, url: str | None = None) -> requests.Response:
    response = requests.post(f"{url or emulator.auth_url}/auth/tokens", json=PASSWORD_AUTH, timeout=10)
    assert response.status_code == 201
    return response


def test_it_issues_validates_and_revokes_tokens(emulator: RunningEmulator) -> None:
    token = _token(emulator).headers["X-Subject-Token"]
    headers = {"X-Auth-Token": token, "X-Subject-Token": token}
    shown = requests.get(f"{emulator.auth_url}/auth/tokens", headers=headers, timeout=10)
    assert shown.status_code == 200
    assert shown.json()["token"]["project"]["name"] == "demo-survey"
    assert requests.delete(f"{emulator.auth_url}/auth/tokens", headers=headers, timeout=10).status_code == 204
    servers = requests.get(
        f"{emulator.url}/compute/v2.1/servers", headers={"X-Auth-Token": token}, timeout=10
    )
    assert servers.status_code == 401
    assert servers.json()["error"]["title"] == "Unauthorized"


def test_it_points_the_catalog_at_the_host_the_client_used(emulator: RunningEmulator) -> None:
    via_localhost = emulator.auth_url.replace("127.0.0.1", "localhost")
    catalog = _token(emulator, via_localhost).json()["token"]["catalog"]
    urls = {entry["type"]: entry["endpoints"][0]["url"] for entry in catalog}
    assert set(urls) == {"identity", "compute", "image", "network"}
    assert all(url.startswith(emulator.url.replace("127.0.0.1", "localhost")) for url in urls.values())


def test_it_stops_accepting_an_expired_application_credential(emulator: RunningEmulator) -> None:
    conn = connect(emulator)
    # Whole seconds: the credential lives between 2 and 3 s, long enough for the first use on a busy machine.
    expires = int(time.time()) + 3
    soon = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(expires)) + "Z"
    cred = conn.identity.create_application_credential(
        user=conn.current_user_id, name="short", expires_at=soon
    )
    body = {
        "auth": {
            "identity": {
                "methods": ["application_credential"],
                "application_credential": {"id": cred.id, "secret": cred.secret},
            }
        }
    }
    first = requests.post(f"{emulator.auth_url}/auth/tokens", json=body, timeout=10)
    assert first.status_code == 201
    assert first.json()["token"]["application_credential"]["restricted"] is True
    time.sleep(max(0.0, expires + 0.5 - time.time()))
    assert requests.post(f"{emulator.auth_url}/auth/tokens", json=body, timeout=10).status_code == 401


def test_it_says_it_is_an_emulated_cloud(emulator: RunningEmulator) -> None:
    index = requests.get(f"{emulator.url}/", timeout=10).json()
    assert index["emulated"] is True
    assert index["auth_url"] == emulator.auth_url
