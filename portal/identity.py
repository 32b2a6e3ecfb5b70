"""Sign-in: local Django accounts or CADC credentials, chosen by IDENTITY_BACKEND (orchestration.backends).

With ``cadc`` the username and password are checked once against the CADC login
service; the local user is created on first sign-in with an unusable password,
so no password is ever stored.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.http import HttpRequest

from orchestration import backends
from orchestration.identity.base import IdentityProvider
from orchestration.identity.cadc import IdentityServiceUnavailable, InvalidCredentials

log = logging.getLogger(__name__)


class IdentityUnavailable(Exception):
    """The identity service could not be reached; the message is shown on the sign-in page."""


class AccountConflict(Exception):
    """A CADC sign-in whose username is a local account's; the message is shown on the sign-in page."""


class PortalIdentityBackend(ModelBackend):
    def authenticate(  # type: ignore[override]
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> Any:
        if not username or not password:
            return None
        provider = backends.identity_provider()
        if provider is None:
            return super().authenticate(request, username=username, password=password, **kwargs)
        return self._authenticate_with(provider, username, password)

    def _authenticate_with(self, provider: IdentityProvider, username: str, password: str) -> Any:
        try:
            provider.check_password(username, password)
        except InvalidCredentials:
            return None
        except IdentityServiceUnavailable as exc:
            log.warning("CADC login service unavailable for sign-in of %s", username)
            raise IdentityUnavailable(str(exc)) from exc
        user_model = get_user_model()
        user, created = user_model.objects.get_or_create(username=username)
        if not created and (user.has_usable_password() or user.is_staff or user.is_superuser):
            # A local account (an operator, the demo user) must never be taken over by a CADC login.
            log.warning("CADC sign-in of %s refused: a local account has that name", username)
            raise AccountConflict(
                "This username belongs to a local account of this portal. Ask its operators."
            )
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        return user if self.user_can_authenticate(user) else None
