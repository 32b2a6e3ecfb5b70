"""The right Storage for a user, from settings: a local directory or the user's VOSpace.

`storage_for(user)` is what views and tasks (batch "store outputs in") call. Paths given to the
returned object are always relative to the user's own space; the adapter refuses anything else, so
another user's files cannot be named at all.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from orchestration.storage.base import Storage, StorageError
from orchestration.storage.local import LocalStorage

log = logging.getLogger(__name__)

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
    from orchestration.storage.vospace import VOSpaceStorage

    base_uri = settings.VOSPACE_BASE_URI.format(username=username)
    registry = settings.CADC_REGISTRY_URL or None
    if settings.VOSPACE_TOKEN:
        # Single-account installs and tests: one CADC token for the whole portal.
        return VOSpaceStorage(base_uri, token=settings.VOSPACE_TOKEN, registry_url=registry)
    from portal.certificates import proxy_file_for

    certfile = proxy_file_for(user)
    if certfile is None:
        raise NoStorageCredentials(
            "Your VOSpace needs a CADC proxy certificate, and the portal has none that is still valid. "
            "Renew it from the user menu (it asks for your CADC password once)."
        )
    return VOSpaceStorage(base_uri, certfile=str(certfile), registry_url=registry)


def is_remote() -> bool:
    """True when storage calls go over the network (VOSpace): pages then avoid slow extras."""
    return settings.STORAGE_BACKEND != "local"


# -- the space used, as last measured (the dashboard reads the database only) -------------------------
def record_usage(user: Any, used: int) -> None:
    from portal.models.storage import StorageUsage

    StorageUsage.objects.update_or_create(
        user=user, defaults={"bytes_used": used, "measured_at": timezone.now()}
    )


def refresh_usage(user: Any, storage: Storage | None = None) -> int | None:
    """Measure now (local backend: cheap) or ask a worker to (VOSpace: one request per folder)."""
    if is_remote():
        from orchestration.tasks.storage import refresh_storage_usage

        user_id = user.pk
        transaction.on_commit(lambda: refresh_storage_usage.delay(user_id))
        return None
    try:
        used = (storage or storage_for(user)).usage()
    except StorageError as exc:
        log.warning("storage usage of %s not measured: %s", user.username, type(exc).__name__)
        return None
    record_usage(user, used)
    return used
