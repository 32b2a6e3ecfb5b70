"""Glance image sharing as the portal uses it, checked the same way against the emulator and a real cloud."""

from __future__ import annotations

import pytest
from openstack import exceptions
from openstack.connection import Connection

from orchestration.cloud import CloudClient
from orchestration.cloud.images import (
    image_members,
    member_status,
    revoke_share,
    set_member_status,
    share_image,
)


def check_sharing(owner: Connection, other: Connection, image_id: str) -> None:
    """``owner`` owns the private image ``image_id``; ``other`` is a second project of the same user."""
    other_project = str(other.current_project_id)
    a, b = CloudClient(owner), CloudClient(other)
    assert owner.image.get_image(image_id).visibility == "private"
    with pytest.raises(exceptions.ForbiddenException):  # only shared images have members
        owner.image.add_member(image_id, member=other_project)
    with pytest.raises(exceptions.NotFoundException):  # private: the other project cannot see it
        other.image.get_image(image_id)

    offered = share_image(a, image_id, other_project)
    assert (offered.member_id, offered.status) == (other_project, "pending")
    assert owner.image.get_image(image_id).visibility == "shared"
    assert share_image(a, image_id, other_project).status == "pending"  # again: no change, no error
    with pytest.raises(exceptions.ConflictException):
        owner.image.add_member(image_id, member=other_project)

    # Pending: the other project sees it by ID and when asking for pending images, not in its listing.
    assert other.image.get_image(image_id).id == image_id
    assert image_id not in {i.id for i in other.image.images()}
    assert image_id in {i.id for i in other.image.images(member_status="pending")}
    member = member_status(b, image_id, other_project)
    assert member is not None and member.status == "pending"

    with pytest.raises(exceptions.ForbiddenException):  # the owner cannot accept for the member
        owner.image.update_member(other_project, image_id, status="accepted")
    with pytest.raises(exceptions.BadRequestException):
        other.image.update_member(other_project, image_id, status="kept")
    accepted = set_member_status(b, image_id, other_project, "accepted")
    assert accepted.status == "accepted"
    assert image_id in {i.id for i in other.image.images()}
    assert [(m.member_id, m.status) for m in image_members(a, image_id)] == [(other_project, "accepted")]
    assert [m.member_id for m in image_members(b, image_id)] == [other_project]  # a member sees itself only

    with pytest.raises(exceptions.ForbiddenException):  # only the owner revokes
        other.image.remove_member(other_project, image_id, ignore_missing=False)
    revoke_share(a, image_id, other_project)
    revoke_share(a, image_id, other_project)  # already gone: fine
    assert image_members(a, image_id) == []
    with pytest.raises(exceptions.NotFoundException):
        other.image.get_image(image_id)
    assert member_status(b, image_id, other_project) is None


def check_member_errors(owner: Connection, other: Connection, image_id: str) -> None:
    """Status codes, messages and body shapes as recorded from a real Glance (Zed)."""
    member = other.current_project_id

    def call(conn: Connection, method: str, path: str, body: object = None) -> tuple[int, str]:
        response = getattr(conn.image, method)(path, json=body, raise_exc=False)
        return response.status_code, response.text

    status, text = call(owner, "post", f"/images/{image_id}/members", {"member": member})
    assert status == 403 and f"Not allowed to create members for image {image_id}." in text
    owner.image.update_image(image_id, visibility="shared")
    response = owner.image.post(f"/images/{image_id}/members", json={"member": member})
    assert list(response.json()) == ["member_id", "image_id", "status", "created_at", "updated_at", "schema"]
    status, text = call(owner, "post", f"/images/{image_id}/members", {"member": member})
    assert status == 409 and f"Member {member} is duplicated for image {image_id}" in text
    status, text = call(owner, "put", f"/images/{image_id}/members/{member}", {"status": "accepted"})
    assert status == 403 and f"Not allowed to update members for image {image_id}." in text
    status, text = call(other, "put", f"/images/{image_id}/members/{member}", {"status": "kept"})
    assert status == 400 and "Status must be" in text
    status, text = call(other, "delete", f"/images/{image_id}/members/{member}")
    assert status == 403 and f"Not allowed to delete members for image {image_id}." in text
    assert call(owner, "delete", f"/images/{image_id}/members/{member}")[0] == 204
    status, text = call(owner, "delete", f"/images/{image_id}/members/{member}")
    assert status == 404 and f"{member} not found in the member list of the image {image_id}." in text
    status, text = call(owner, "get", "/images?member_status=bogus")
    assert status == 400 and "Invalid status: bogus" in text
