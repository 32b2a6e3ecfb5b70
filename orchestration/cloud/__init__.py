"""The cloud adapter: OpenStack through openstacksdk, nothing else.

The same code serves a real OpenStack and the bundled emulator. Functions return
the dataclasses in ``types``; faults become the exceptions in ``errors``.
"""

from orchestration.cloud.client import CloudClient, connect_with_app_credential, connect_with_password
from orchestration.cloud.errors import (
    CloudError,
    CloudNotFound,
    CloudUnavailable,
    CredentialsRejected,
    InvalidRequest,
    QuotaExceeded,
)

__all__ = [
    "CloudClient",
    "CloudError",
    "CloudNotFound",
    "CloudUnavailable",
    "CredentialsRejected",
    "InvalidRequest",
    "QuotaExceeded",
    "connect_with_app_credential",
    "connect_with_password",
]
