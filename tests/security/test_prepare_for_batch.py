"""Hostile input to "prepare for batch" and sharing: nothing a user types reaches a shell on the VM."""

from __future__ import annotations

import pytest
import yaml
from django.contrib.auth.models import User

from orchestration.cloud.readiness import SCRIPT_PATH
from portal.forms.cloud import LaunchForm, ShareForm
from portal.models import Flavor, Image, Project


@pytest.fixture
def project(alice: User) -> Project:
    p = Project.objects.get(name="alice-lensing")
    Image.objects.create(project=p, external_id="ubuntu", name="canfar-ubuntu-22.04", status="active")
    Flavor.objects.create(
        project=p, external_id="c2", name="c2-7.5gb-31", vcpus=2, ram_mb=7680, disk_gb=20, ephemeral_gb=31
    )
    return p


def _form(project: Project, alice: User, packages: str) -> LaunchForm:
    data = {"name": "vm", "source": "ubuntu", "flavor": "c2", "count": 1, "prepare_for_batch": "on"}
    return LaunchForm({**data, "packages": packages}, project=project, user=alice)


@pytest.mark.parametrize(
    "packages",
    [
        "git;reboot",
        "$(id)",
        "`id`",
        "-o APT::Get::AllowUnauthenticated=1",
        "../../x",
        "a|b",
        "pkg\nruncmd:",
        "Git",
    ],
)
def test_it_refuses_package_names_that_are_not_names(project: Project, alice: User, packages: str) -> None:
    form = _form(project, alice, packages)
    assert not form.is_valid() and "Not a package name" in str(form.errors["packages"])


def test_it_passes_packages_as_arguments_never_through_a_shell(project: Project, alice: User) -> None:
    form = _form(project, alice, "source-extractor git")
    assert form.is_valid(), form.errors
    config = yaml.safe_load(form.user_data())
    # runcmd's list form is executed without a shell; the script quotes each "$package".
    assert config["runcmd"] == [[SCRIPT_PATH, "alice", "source-extractor", "git"]]
    assert '"$package"' in config["write_files"][0]["content"]


def test_it_refuses_a_user_name_that_is_not_a_linux_user(project: Project) -> None:
    mallory = User.objects.create_user("mallory;reboot", password="x")
    project.members.add(mallory)
    form = _form(project, mallory, "git")
    assert not form.is_valid() and "not a valid Linux user name" in str(form.errors["prepare_for_batch"])


@pytest.mark.parametrize("member", ["../../v2/images", "abc", "' OR 1=1 --", "a" * 65, "<script>"])
def test_it_refuses_member_ids_that_are_not_project_ids(project: Project, alice: User, member: str) -> None:
    form = ShareForm({"project_id": member}, project=project, user=alice)
    assert not form.is_valid()
