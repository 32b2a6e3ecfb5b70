"""Every adapter to an outside system, built from settings: the one place that reads which is configured.

Callers get the interface types (``Storage``, ``Executor``, ``Archive``, ``CloudClient``,
``IdentityProvider``) and never name an implementation. Paths given to a user's ``Storage`` are
relative to that user's own space; the adapter refuses anything else, so another user's files cannot
be named at all.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings

from orchestration.archive import Archive, CadcArchive, LocalArchive
from orchestration.batch.base import Executor, LocalServices, PoolProfile
from orchestration.batch.sandbox import SandboxConfig
from orchestration.identity.base import IdentityProvider
from orchestration.identity.cadc import CadcIdentity
from orchestration.storage.base import Storage, StorageError
from orchestration.storage.local import LocalStorage
from orchestration.storage.vospace import VOSpaceStorage
from portal.certificates import proxy_file_for

if TYPE_CHECKING:
    from orchestration.batch.local_executor import LocalExecutor
    from orchestration.cloud.client import CloudClient

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------- storage

_SAFE_USERNAME = re.compile(r"^[\w.@+-]+$")  # Django's username characters


class NoStorageCredentials(StorageError):
    """VOSpace needs a proxy certificate the portal does not have (yet)."""


def _username(user: Any) -> str:
    name = str(user.username)
    # Usernames become a directory or a VOSpace node name: never let one reach another user's space.
    if not _SAFE_USERNAME.match(name) or name in (".", ".."):
        raise StorageError("Your username cannot be used as a storage folder name; contact support.")
    return name


def local_root(user: Any) -> Path:
    """The user's folder with the local backend (it may not exist yet)."""
    return Path(os.path.realpath(settings.STORAGE_ROOT / _username(user)))


def storage_for(user: Any) -> Storage:
    """The user's storage; NoStorageCredentials when VOSpace is configured and no credential exists."""
    username = _username(user)
    if settings.STORAGE_BACKEND == "local":
        return LocalStorage(local_root(user))
    base_uri = settings.VOSPACE_BASE_URI.format(username=username)
    registry = settings.CADC_REGISTRY_URL or None
    if settings.VOSPACE_TOKEN:
        # Single-account installs and tests: one CADC token for the whole portal.
        return VOSpaceStorage(base_uri, token=settings.VOSPACE_TOKEN, registry_url=registry)
    certfile = proxy_file_for(user)
    if certfile is None:
        raise NoStorageCredentials(
            "Your VOSpace needs a CADC proxy certificate, and the portal has none that is still valid. "
            "Renew it from the user menu (it asks for your CADC password once)."
        )
    return VOSpaceStorage(base_uri, certfile=str(certfile), registry_url=registry)


def storage_is_remote() -> bool:
    """True when storage calls go over the network (VOSpace): pages then avoid slow extras."""
    return settings.STORAGE_BACKEND != "local"


# ---------------------------------------------------------------------------- batch
#
# The executors are imported where they are built: both load htcondor2 (the local executor reads
# its HTCondor event logs with it), about a third of a second that pages and the storage tasks need
# not pay.

JOB_TOOLS = Path(__file__).resolve().parent / "batch" / "jobtools"


def sandbox_config() -> SandboxConfig:
    return SandboxConfig(
        mode=settings.BATCH_SANDBOX,
        uid=settings.BATCH_JOB_UID_BASE if settings.BATCH_JOB_UID_COUNT else settings.BATCH_JOB_UID,
        gid=settings.BATCH_JOB_UID_BASE if settings.BATCH_JOB_UID_COUNT else settings.BATCH_JOB_GID,
        uid_count=settings.BATCH_JOB_UID_COUNT,
        network=settings.BATCH_JOB_NETWORK,
        network_uid=settings.BATCH_JOB_NETWORK_UID,
        readonly_paths=tuple(settings.BATCH_JOB_READONLY_PATHS),
    )


def portal_data_paths() -> list[Path]:
    """Everything of the portal's that a job must not read: its code, data, users' files and other jobs.

    Each can be configured outside VAR_DIR, so each is listed; the job's own scratch is bound back in.
    """
    paths = [
        settings.BASE_DIR,
        settings.VAR_DIR,
        settings.BATCH_ROOT,
        settings.BATCH_SCRATCH_ROOT,
        settings.STORAGE_ROOT,
        settings.ARCHIVE_DIR,
        settings.CATALOGUE_WORK_DIR,
    ]
    if settings.PROXY_CERT_DIR:
        paths.append(Path(settings.PROXY_CERT_DIR))
    return [Path(p) for p in paths]


def local_executor() -> LocalExecutor:
    from orchestration.batch.local_executor import LocalExecutor
    from orchestration.batch.local_runner import Limits

    return LocalExecutor(
        root=settings.BATCH_ROOT / "local",
        scratch_root=settings.BATCH_SCRATCH_ROOT,
        limits=Limits(
            wall_seconds=settings.BATCH_JOB_WALL_SECONDS,
            memory_mb=settings.BATCH_JOB_MEMORY_MB,
            output_mb=settings.BATCH_JOB_OUTPUT_MB,
            max_processes=settings.BATCH_JOB_MAX_PROCESSES,
            scratch_mb=settings.BATCH_JOB_SCRATCH_MB,
        ),
        sandbox=sandbox_config(),
        hidden_paths=portal_data_paths(),
    )


def local_services(user: Any) -> LocalServices | None:
    """When the archive and storage are local folders (the embedded defaults), local jobs get cadcget
    and vcp that use them, so the tutorial's script runs as it is. None with CADC and VOSpace: jobs
    then use the real tools (installed on the workers) with the user's proxy certificate."""
    if settings.ARCHIVE_BACKEND != "local" or settings.STORAGE_BACKEND != "local":
        return None
    archive = Path(settings.ARCHIVE_DIR).resolve()
    private = [Path(p).resolve() for p in portal_data_paths() if Path(p).resolve() != archive]
    if any(p == archive or archive in p.parents for p in private):
        # The archive is shown to jobs read-only; it must not hold the portal's data or users' files.
        log.warning("batch: ARCHIVE_DIR %s holds other portal data; jobs get no cadcget/vcp", archive)
        return None
    return LocalServices(
        tools_dir=JOB_TOOLS,
        archive_dir=Path(settings.ARCHIVE_DIR),
        storage_dir=local_root(user),  # validates the user name as a folder name
        vos_uri=settings.VOSPACE_BASE_URI.format(username=user.username),
    )


def _schedd() -> Any:
    import htcondor2

    if settings.HTCONDOR_COLLECTOR or settings.HTCONDOR_SCHEDD:
        collector = htcondor2.Collector(settings.HTCONDOR_COLLECTOR or None)
        ad = collector.locate(htcondor2.DaemonType.Schedd, settings.HTCONDOR_SCHEDD or None)
        return htcondor2.Schedd(ad)
    return htcondor2.Schedd()


def _collector() -> Any:
    import htcondor2

    return htcondor2.Collector(settings.HTCONDOR_COLLECTOR or None)


SCHEDD_FACTORY = _schedd  # tests replace it with a stand-in that has the Schedd methods
COLLECTOR_FACTORY = _collector  # and this one with the stand-in's slot ads


def executor_for(name: str) -> Executor:
    """The executor a submission was sent with ("local" or "htcondor")."""
    if name == "local":
        return local_executor()
    from orchestration.batch.htcondor import HTCondorExecutor

    return HTCondorExecutor(
        lambda: SCHEDD_FACTORY(),
        PoolProfile(settings.HTCONDOR_POOL_PROFILE),
        settings.BATCH_ROOT / "htcondor",
        collector_factory=lambda: COLLECTOR_FACTORY(),
    )


# ---------------------------------------------------------------------------- archive


def archive_for(user: Any) -> Archive:
    """Where the user's input images come from: CADC (with their proxy certificate) or a local folder."""
    if settings.ARCHIVE_BACKEND == "local":
        return LocalArchive(settings.ARCHIVE_DIR)
    certfile = proxy_file_for(user)
    return CadcArchive(
        certfile=str(certfile) if certfile else None, registry_url=settings.CADC_REGISTRY_URL or None
    )


# ---------------------------------------------------------------------------- cloud
#
# openstacksdk takes about half a second to import: loaded where a cloud is used, not by every
# module that imports this one.


def _cloud_kwargs() -> dict[str, Any]:
    return {"region": settings.OPENSTACK_REGION or None, "interface": settings.OPENSTACK_INTERFACE}


def cloud_with_password(username: str, password: str) -> CloudClient:
    """A one-off unscoped client for a sign-in: use it in a ``with`` block so its sockets close."""
    from orchestration.cloud.client import connect_with_password

    return connect_with_password(
        settings.OPENSTACK_AUTH_URL,
        username,
        password,
        user_domain=settings.OPENSTACK_USER_DOMAIN,
        project_domain=settings.OPENSTACK_PROJECT_DOMAIN,
        **_cloud_kwargs(),
    )


def cloud_with_token(token: str, project_id: str | None = None) -> CloudClient:
    """A one-off client for the sign-in token: use it in a ``with`` block so its sockets close."""
    from orchestration.cloud.client import connect_with_token

    return connect_with_token(settings.OPENSTACK_AUTH_URL, token, project_id=project_id, **_cloud_kwargs())


def cloud_with_app_credential(identifier: str, secret: str) -> CloudClient:
    """A client acting with an application credential (its session is kept for the next call)."""
    from orchestration.cloud.client import connect_with_app_credential

    return connect_with_app_credential(settings.OPENSTACK_AUTH_URL, identifier, secret, **_cloud_kwargs())


# ---------------------------------------------------------------------------- identity


def identity_provider() -> IdentityProvider | None:
    """Who checks a password at sign-in: CADC, or None for the portal's own accounts (Django's)."""
    if settings.IDENTITY_BACKEND == "local":
        return None
    return CadcIdentity(registry_url=settings.CADC_REGISTRY_URL or None, timeout=settings.CADC_TIMEOUT)
