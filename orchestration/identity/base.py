"""The identity interface: who checks a user's password at sign-in."""

from __future__ import annotations

from typing import Protocol


class IdentityProvider(Protocol):
    def check_password(self, username: str, password: str) -> None:
        """Return when the service accepts the password; ``InvalidCredentials`` when it refuses it,
        ``IdentityServiceUnavailable`` when it cannot be asked now (both in ``identity.cadc``)."""
        ...
