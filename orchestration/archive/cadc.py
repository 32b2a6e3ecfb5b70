"""Observations from the CADC storage inventory through the real `cadcdata` client."""

from __future__ import annotations

import os
from pathlib import Path

from orchestration.archive.base import (
    ArchiveAccessDenied,
    ArchiveUnavailable,
    NotFound,
    destination,
    observation_uri,
)
from orchestration.identity.cadc_registry import certificate_refused, http_status, use_registry


class CadcArchive:
    """Observations from the CADC storage inventory through `cadcdata` (anonymous by default)."""

    def __init__(
        self, certfile: str | None = None, token: str | None = None, registry_url: str | None = None
    ) -> None:
        use_registry(registry_url)
        self.certfile = certfile
        self.token = token

    def fetch(self, observation: str, dest: str | os.PathLike[str]) -> Path:
        from cadcdata import StorageInventoryClient
        from cadcutils import exceptions as cadc_exc
        from cadcutils import net

        uri = observation_uri(observation)
        target = destination(uri, dest)
        part = target.with_name(target.name + ".part")
        name = uri.rsplit("/", 1)[1]
        try:
            subject = net.Subject(certificate=self.certfile, token=self.token)
            client = StorageInventoryClient(subject)
            # cadcutils retries 503s for minutes; a task retries with its own back-off instead.
            client._cadc_client.retry = False
            client.cadcget(uri, dest=str(part))
        except cadc_exc.NotFoundException:
            raise NotFound(f"Observation {name} was not found in the CADC archive.") from None
        except (cadc_exc.UnauthorizedException, cadc_exc.ForbiddenException):
            raise ArchiveAccessDenied(
                f"CADC refused access to {name}: it may be proprietary, or your certificate has expired."
            ) from None
        except Exception as exc:  # noqa: BLE001 - anything else: the archive is not usable right now
            part.unlink(missing_ok=True)
            if certificate_refused(exc):
                raise ArchiveAccessDenied(
                    "CADC did not accept your proxy certificate (expired, revoked or not issued by CADC). "
                    "Renew it from the user menu."
                ) from None
            status = http_status(exc)
            if status == 503:
                message = "The CADC archive is temporarily unavailable. Please try again in a few minutes."
            elif status:
                message = f"The CADC archive answered with an error (HTTP {status}). Please try again later."
            else:
                message = "The CADC archive cannot be reached right now. Please try again later."
            raise ArchiveUnavailable(message, f"{type(exc).__name__}: {exc}") from None
        os.replace(part, target)
        return target
