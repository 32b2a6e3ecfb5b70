"""Keystone v3: tokens (password, token, application credential), projects, application credentials."""

from __future__ import annotations

import base64
import hashlib
import os
import time
import uuid
from datetime import datetime
from typing import Any

from emulator.http import UNAUTHORIZED, ApiError, Auth, Request, Response, Router, iso, keystone_error
from emulator.seed import check_secret, hash_secret
from emulator.store import Cloud

PREFIX = "/identity"
render_error = keystone_error
router = Router()
TOKEN_SECONDS = 3600
DOMAIN = {"id": "default", "name": "Default"}
ROLES = [
    {"id": "7f2e52c6a3fc4f4eb5ab9720b4121d74", "name": "reader"},
    {"id": "2c55d0bb98cb45899cdafff2d4393b37", "name": "member"},
]
VERSION = {
    "id": "v3.14",
    "status": "stable",
    "updated": "2020-04-07T00:00:00Z",
    "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}],
}
HEADERS = {"Vary": "X-Auth-Token"}


def service_url(request: Request) -> str:
    return f"{request.base_url}{PREFIX}"


def versions(request: Request) -> Response | None:
    """Unauthenticated discovery documents at / and /v3."""
    doc = {**VERSION, "links": [{"rel": "self", "href": f"{service_url(request)}/v3/"}]}
    if request.path in ("", "/"):
        location = f"{service_url(request)}/v3/"
        return Response(300, {"versions": {"values": [doc]}}, {**HEADERS, "Location": location})
    if request.path in ("/v3", "/v3/") and request.method == "GET":
        return Response(200, {"version": doc}, dict(HEADERS))
    return None


def _token_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def validate_token(cloud: Cloud, token: str | None) -> Auth | None:
    """The bearer of a live token, or None for a missing, revoked or expired one."""
    if not token:
        return None
    record = cloud.store.get("token", _token_key(token))
    if record is None or record["expires"] <= time.time():
        return None
    if record.get("app_cred_id") and cloud.store.get("app_cred", record["app_cred_id"]) is None:
        return None  # deleting an application credential revokes its tokens
    return Auth(
        user_id=record["user_id"],
        user_name=record["user_name"],
        project_id=record.get("project_id"),
        project_name=record.get("project_name"),
        roles=[role["name"] for role in ROLES],
        methods=record["methods"],
        app_cred_id=record.get("app_cred_id"),
    )


def authenticate(cloud: Cloud, request: Request) -> Auth:
    auth = validate_token(cloud, request.headers.get("x-auth-token"))
    if auth is None:
        raise ApiError(401, UNAUTHORIZED)
    return auth


# --- tokens -------------------------------------------------------------------------------


@router.route("POST", "/v3/auth/tokens")
def issue_token(cloud: Cloud, request: Request) -> Response:
    auth = request.json_object("auth")
    identity = auth.get("identity") or {}
    methods = identity.get("methods") or []
    app_cred = None
    if "password" in methods:
        user = _password_user(cloud, identity.get("password") or {})
        audit = [_audit_id()]
    elif "token" in methods:
        previous = validate_token(cloud, (identity.get("token") or {}).get("id"))
        if previous is None:
            raise ApiError(404, "Could not find token.")
        user = cloud.store.get("user", previous.user_id)
        methods = previous.methods + ([] if "token" in previous.methods else ["token"])
        audit = [_audit_id()]
    elif "application_credential" in methods:
        app_cred, user = _app_cred_user(cloud, identity.get("application_credential") or {})
        audit = [_audit_id()]
    else:
        raise ApiError(401, "The request you have made requires authentication.")
    if user is None:
        raise ApiError(401, UNAUTHORIZED)
    project = _scope(cloud, user, auth.get("scope"), app_cred)
    token = base64.urlsafe_b64encode(os.urandom(30)).decode().rstrip("=")
    issued = time.time()
    expires = issued + TOKEN_SECONDS
    if app_cred and app_cred.get("expires") and app_cred["expires"] < expires:
        expires = app_cred["expires"]
    record = {
        "id": _token_key(token),
        "user_id": user["id"],
        "user_name": user["name"],
        "project_id": project["id"] if project else None,
        "project_name": project["name"] if project else None,
        "methods": methods,
        "audit_ids": audit,
        "issued": issued,
        "expires": expires,
        "app_cred_id": app_cred["id"] if app_cred else None,
        "app_cred_name": app_cred["name"] if app_cred else None,
    }
    with cloud.store.transaction():
        for old in cloud.store.all("token"):
            if old["expires"] <= issued:  # forget expired tokens so the state file does not grow
                cloud.store.delete("token", old["id"])
        cloud.store.put("token", record)
    headers = {**HEADERS, "X-Subject-Token": token}
    return Response(201, {"token": _token_body(cloud, request, record)}, headers)


@router.route("GET", "/v3/auth/tokens")
def check_token(cloud: Cloud, request: Request) -> Response:
    authenticate(cloud, request)
    subject = request.headers.get("x-subject-token", "")
    if validate_token(cloud, subject) is None:
        raise ApiError(404, "Could not find token.")
    record = cloud.store.get("token", _token_key(subject))
    assert record is not None
    return Response(
        200, {"token": _token_body(cloud, request, record)}, {**HEADERS, "X-Subject-Token": subject}
    )


@router.route("HEAD", "/v3/auth/tokens")
def head_token(cloud: Cloud, request: Request) -> Response:
    response = check_token(cloud, request)
    return Response(200, None, response.headers)


@router.route("DELETE", "/v3/auth/tokens")
def revoke_token(cloud: Cloud, request: Request) -> Response:
    authenticate(cloud, request)
    subject = request.headers.get("x-subject-token", "")
    if not cloud.store.delete("token", _token_key(subject)):
        raise ApiError(404, "Could not find token.")
    return Response(204, None, dict(HEADERS))


@router.route("GET", "/v3/auth/projects")
def auth_projects(cloud: Cloud, request: Request) -> Response:
    auth = authenticate(cloud, request)
    return _project_list(cloud, request, auth.user_id, "/v3/auth/projects")


@router.route("GET", "/v3/auth/catalog")
def auth_catalog(cloud: Cloud, request: Request) -> Response:
    authenticate(cloud, request)
    return Response(200, {"catalog": catalog(cloud, request), "links": _links(request, "/v3/auth/catalog")})


def _password_user(cloud: Cloud, password: dict[str, Any]) -> dict[str, Any] | None:
    spec = password.get("user") or {}
    if "id" in spec:
        user = cloud.store.get("user", str(spec["id"]))
    else:
        domain = spec.get("domain") or {}
        if domain.get("name", "Default") != "Default" and domain.get("id", "default") != "default":
            return None
        users = cloud.store.all("user", name=spec.get("name"))
        user = users[0] if users else None
    if user is None or not check_secret(str(spec.get("password", "")), user["password"]):
        raise ApiError(401, UNAUTHORIZED)
    return user


def _app_cred_user(cloud: Cloud, spec: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    if "id" in spec:
        cred = cloud.store.get("app_cred", str(spec["id"]))
    else:
        user_spec = spec.get("user") or {}
        user_id = user_spec.get("id") or next(
            (u["id"] for u in cloud.store.all("user", name=user_spec.get("name"))), None
        )
        found = cloud.store.all("app_cred", name=spec.get("name"), user_id=user_id)
        cred = found[0] if found else None
    if cred is None:  # deleted (or never made): a real Keystone answers 404, not 401
        ref = spec.get("id") or spec.get("name")
        raise ApiError(404, f"Could not find Application Credential: {ref}.")
    if not check_secret(str(spec.get("secret", "")), cred["secret"]):
        raise ApiError(401, UNAUTHORIZED)
    if cred.get("expires") and cred["expires"] <= time.time():  # expired: 401
        raise ApiError(401, UNAUTHORIZED)
    return cred, cloud.store.get("user", cred["user_id"])


def _scope(
    cloud: Cloud, user: dict[str, Any], scope: Any, app_cred: dict[str, Any] | None
) -> dict[str, Any] | None:
    if app_cred:  # an application credential is always bound to its one project
        return cloud.store.get("project", app_cred["project_id"])
    if not scope:
        return None
    spec = scope.get("project") if isinstance(scope, dict) else None
    if not isinstance(spec, dict):
        raise ApiError(400, "Only project scope is supported by this emulated cloud.")
    if "id" in spec:
        project = cloud.store.get("project", str(spec["id"]))
    else:
        found = cloud.store.all("project", name=spec.get("name"))
        project = found[0] if found else None
    if project is None or project["id"] not in user["projects"]:
        raise ApiError(
            401, f"User {user['id']} has no access to project {spec.get('id') or spec.get('name')}"
        )
    return project


def _audit_id() -> str:
    return base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")


def _token_body(cloud: Cloud, request: Request, record: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "methods": record["methods"],
        "user": {
            "domain": DOMAIN,
            "id": record["user_id"],
            "name": record["user_name"],
            "password_expires_at": None,
        },
        "audit_ids": record["audit_ids"],
        "expires_at": iso(record["expires"], micro=True) + "Z",
        "issued_at": iso(record["issued"], micro=True) + "Z",
    }
    if record.get("project_id"):
        body["project"] = {"domain": DOMAIN, "id": record["project_id"], "name": record["project_name"]}
        body["is_domain"] = False
        body["roles"] = ROLES if not record.get("app_cred_id") else ROLES[1:]
        body["catalog"] = catalog(cloud, request)
    if record.get("app_cred_id"):
        body["application_credential"] = {
            "id": record["app_cred_id"],
            "name": record["app_cred_name"],
            "restricted": True,
        }
    return body


def catalog(cloud: Cloud, request: Request) -> list[dict[str, Any]]:
    """Endpoints on the one port, under devstack-like prefixes, at the URL the client used."""
    base = cloud.public_url or request.base_url
    own = cloud.service_urls  # services on ports of their own, when started so
    services = [
        ("identity", "keystone", f"{own.get('/identity', base)}/identity/v3/"),
        ("compute", "nova", f"{own.get('/compute', base)}/compute/v2.1"),
        ("image", "glance", f"{own.get('/image', base)}/image"),
        ("network", "neutron", f"{own.get('/network', base)}/network"),
    ]
    return [
        {
            "endpoints": [
                {
                    "id": uuid.uuid5(uuid.NAMESPACE_URL, f"{url}#{interface}").hex,
                    "interface": interface,
                    "region_id": cloud.region,
                    "url": url,
                    "region": cloud.region,
                }
                for interface in ("public", "internal", "admin")
            ],
            "id": uuid.uuid5(uuid.NAMESPACE_URL, url).hex,
            "type": kind,
            "name": name,
        }
        for kind, name, url in services
    ]


# --- users and projects -------------------------------------------------------------------


def _links(request: Request, path: str) -> dict[str, Any]:
    return {"next": None, "self": f"{service_url(request)}{path}", "previous": None}


def _project_doc(request: Request, project: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": project["id"],
        "name": project["name"],
        "domain_id": "default",
        "description": project.get("description", ""),
        "enabled": True,
        "parent_id": "default",
        "is_domain": False,
        "tags": [],
        "options": {},
        "links": {"self": f"{service_url(request)}/v3/projects/{project['id']}"},
    }


def _project_list(cloud: Cloud, request: Request, user_id: str, path: str) -> Response:
    user = cloud.store.get("user", user_id)
    assert user is not None
    projects = [p for p in cloud.store.all("project") if p["id"] in user["projects"]]
    name = request.arg("name")
    if name:
        projects = [p for p in projects if p["name"] == name]
    projects.sort(key=lambda p: p["id"])
    body = {"projects": [_project_doc(request, p) for p in projects], "links": _links(request, path)}
    return Response(200, body, dict(HEADERS))


def _own_user(cloud: Cloud, request: Request) -> Auth:
    auth = authenticate(cloud, request)
    if request.params["user_id"] != auth.user_id:
        raise ApiError(403, "You are not authorized to perform the requested action: identity:get_user.")
    return auth


@router.route("GET", "/v3/users/{user_id}")
def show_user(cloud: Cloud, request: Request) -> Response:
    auth = _own_user(cloud, request)
    link = {"self": f"{service_url(request)}/v3/users/{auth.user_id}"}
    user = {
        "id": auth.user_id,
        "name": auth.user_name,
        "domain_id": "default",
        "enabled": True,
        "password_expires_at": None,
        "options": {},
        "links": link,
    }
    return Response(200, {"user": user}, dict(HEADERS))


@router.route("GET", "/v3/users/{user_id}/projects")
def user_projects(cloud: Cloud, request: Request) -> Response:
    auth = _own_user(cloud, request)
    return _project_list(cloud, request, auth.user_id, f"/v3/users/{auth.user_id}/projects")


@router.route("GET", "/v3/projects")
def list_projects(cloud: Cloud, request: Request) -> Response:
    authenticate(cloud, request)  # as in Keystone, listing all projects is for admins
    raise ApiError(403, "You are not authorized to perform the requested action: identity:list_projects.")


@router.route("GET", "/v3/projects/{project_id}")
def show_project(cloud: Cloud, request: Request) -> Response:
    auth = authenticate(cloud, request)
    user = cloud.store.get("user", auth.user_id)
    project = cloud.store.get("project", request.params["project_id"])
    if project is None or user is None or project["id"] not in user["projects"]:
        raise ApiError(403, "You are not authorized to perform the requested action: identity:get_project.")
    return Response(200, {"project": _project_doc(request, project)}, dict(HEADERS))


# --- application credentials -------------------------------------------------------------


def _app_cred_doc(request: Request, cred: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": cred["id"],
        "name": cred["name"],
        "description": cred.get("description"),
        "user_id": cred["user_id"],
        "project_id": cred["project_id"],
        "system": None,
        "expires_at": iso(cred["expires"], micro=True) if cred.get("expires") else None,
        "unrestricted": False,
        "roles": [{**ROLES[1], "domain_id": None, "description": None, "options": {"immutable": True}}],
        "links": {"self": f"{service_url(request)}/v3/application_credentials/{cred['id']}"},
    }


@router.route("POST", "/v3/users/{user_id}/application_credentials")
def create_app_cred(cloud: Cloud, request: Request) -> Response:
    auth = _own_user(cloud, request)
    if auth.app_cred_id:
        raise ApiError(
            403,
            "You are not authorized to perform the requested action: Using method 'application_credential' "
            "is not allowed for managing additional application credentials..",
        )
    if not auth.project_id:
        raise ApiError(400, "Application credentials need a project-scoped token.")
    spec = request.json_object("application_credential")
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise ApiError(400, "Invalid input for field 'name': None is not of type 'string'")
    expires = _parse_expiry(spec.get("expires_at"))
    with cloud.store.transaction():
        if cloud.store.all("app_cred", user_id=auth.user_id, name=name):
            raise ApiError(
                409, f"Conflict occurred attempting to store application_credential - {name} exists."
            )
        secret = str(spec.get("secret") or base64.urlsafe_b64encode(os.urandom(48)).decode().rstrip("="))
        cred = {
            "id": uuid.uuid4().hex,
            "name": name,
            "description": spec.get("description"),
            "user_id": auth.user_id,
            "project_id": auth.project_id,
            "expires": expires,
            "secret": hash_secret(secret),
        }
        cloud.store.put("app_cred", cred)
    return Response(
        201, {"application_credential": {**_app_cred_doc(request, cred), "secret": secret}}, dict(HEADERS)
    )


def _parse_expiry(value: Any) -> float | None:
    if value in (None, ""):
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise ApiError(400, f"Invalid input for field 'expires_at': {value!r} is not a date-time") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.now().astimezone().tzinfo).astimezone()
    return moment.timestamp()


@router.route("GET", "/v3/users/{user_id}/application_credentials")
def list_app_creds(cloud: Cloud, request: Request) -> Response:
    auth = _own_user(cloud, request)
    creds = cloud.store.all("app_cred", user_id=auth.user_id)
    if request.arg("name"):
        creds = [c for c in creds if c["name"] == request.arg("name")]
    path = f"/v3/users/{auth.user_id}/application_credentials"
    body = {
        "application_credentials": [_app_cred_doc(request, c) for c in creds],
        "links": _links(request, path),
    }
    return Response(200, body, dict(HEADERS))


def _own_app_cred(cloud: Cloud, request: Request) -> dict[str, Any]:
    auth = _own_user(cloud, request)
    cred = cloud.store.get("app_cred", request.params["cred_id"])
    if cred is None or cred["user_id"] != auth.user_id:
        raise ApiError(404, f"Could not find Application Credential: {request.params['cred_id']}.")
    return cred


@router.route("GET", "/v3/users/{user_id}/application_credentials/{cred_id}")
def show_app_cred(cloud: Cloud, request: Request) -> Response:
    cred = _own_app_cred(cloud, request)
    return Response(200, {"application_credential": _app_cred_doc(request, cred)}, dict(HEADERS))


@router.route("DELETE", "/v3/users/{user_id}/application_credentials/{cred_id}")
def delete_app_cred(cloud: Cloud, request: Request) -> Response:
    cred = _own_app_cred(cloud, request)
    cloud.store.delete("app_cred", cred["id"])
    return Response(204, None, dict(HEADERS))
