"""The cloud sync tells an outage of the cloud from a bug of the portal's."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.contrib.auth.models import User

from orchestration.tasks import cloud
from portal.models import Credential, Project


@pytest.fixture
def project(alice: User) -> Project:
    project = Project.objects.get(name="alice-lensing")
    credential = Credential(user=alice, project=project, kind="openstack", identifier="app-cred-1")
    credential.secret = "not-a-real-secret"
    credential.save()
    return project


def test_it_says_the_cloud_did_not_answer_when_it_does_not(project: Project) -> None:
    # The test settings point the portal at a port that refuses connections: a real outage.
    assert cloud.sync_project_now(project, force=True) == "failed"
    project.refresh_from_db()
    assert project.sync_error == "The cloud did not answer the last refresh."


def test_it_shows_a_bug_with_a_reference_not_as_an_outage(
    project: Project, monkeypatch: Any, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("internal detail")

    monkeypatch.setattr(cloud, "client_for", broken)
    with caplog.at_level(logging.ERROR, logger="orchestration.tasks.cloud"):
        assert cloud.sync_project_now(project, force=True) == "crashed"
    project.refresh_from_db()
    assert project.sync_error.startswith("Something went wrong on the portal's side (reference sync-")
    reference = project.sync_error.split("(reference ")[1].split(")")[0]
    (record,) = [r for r in caplog.records if reference in r.getMessage()]
    assert record.exc_info is not None and record.exc_info[0] is KeyError
    assert "did not answer" not in project.sync_error and "internal detail" not in project.sync_error
