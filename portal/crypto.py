"""Encryption at rest for credentials, with Fernet.

Keys come from ``settings.FERNET_KEYS`` (newest first, so keys can be rotated).
The embedded demo, which has no configured key, derives one from SECRET_KEY.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class DecryptionError(Exception):
    pass


def _fernet() -> MultiFernet:
    keys = list(settings.FERNET_KEYS)
    if not keys:
        digest = hashlib.sha256(("fernet:" + settings.SECRET_KEY).encode()).digest()
        keys = [base64.urlsafe_b64encode(digest).decode()]
    return MultiFernet([Fernet(k) for k in keys])


def encrypt(plaintext: str) -> bytes:
    return _fernet().encrypt(plaintext.encode())


def decrypt(token: bytes) -> str:
    try:
        return _fernet().decrypt(token).decode()
    except InvalidToken as exc:
        raise DecryptionError("stored credential cannot be decrypted with the configured keys") from exc
