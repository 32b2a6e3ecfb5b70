"""How SDK failures become the portal's cloud errors: a rejected credential versus a cloud that is down."""

from __future__ import annotations

import pytest
from keystoneauth1 import exceptions as ks_exc
from openstack import exceptions as os_exc

from orchestration.cloud.errors import CloudUnavailable, CredentialsRejected, translate


def _raise_sdk_wrapping(inner: BaseException) -> None:
    try:
        raise inner
    except BaseException as exc:
        raise os_exc.SDKException(str(exc)) from exc


def test_keystones_401_wrapped_by_the_sdk_is_a_rejected_credential() -> None:
    with pytest.raises(CredentialsRejected), translate("sign in to the cloud"):
        _raise_sdk_wrapping(ks_exc.Unauthorized("The request you have made requires authentication."))


def test_a_connection_failure_after_a_401_is_still_the_cloud_being_down() -> None:
    """Version discovery retries after a 401; if the retry cannot connect, nothing was rejected."""
    with pytest.raises(CloudUnavailable), translate("list servers"):
        try:
            raise ks_exc.Unauthorized("discovery needs auth")
        except ks_exc.Unauthorized:
            raise ks_exc.ConnectFailure("Unable to establish connection") from None
    with pytest.raises(CloudUnavailable), translate("list servers"):
        try:
            raise ks_exc.Unauthorized("discovery needs auth")
        except ks_exc.Unauthorized:
            _raise_sdk_wrapping(ks_exc.ConnectFailure("Unable to establish connection"))
