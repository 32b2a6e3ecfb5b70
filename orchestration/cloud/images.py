"""Sharing images between projects: Glance v2 image members, through openstacksdk.

Glance gives members only to images whose visibility is ``shared``; a snapshot is made ``private``,
so sharing first makes it ``shared`` (which alone shows it to nobody). The owner adds a project
(status ``pending``); the member project accepts it, and from then on the image is in its listings
and can boot its VMs; the owner removes the member to revoke.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from openstack import exceptions as os_exc
from openstack.image.v2._proxy import Proxy as GlanceV2

from orchestration.cloud.client import CloudClient, _ts
from orchestration.cloud.errors import CloudNotFound, translate

STATUSES = ("pending", "accepted", "rejected")


@dataclass(frozen=True)
class ImageMemberInfo:
    image_id: str
    member_id: str  # the project the image is shared with
    status: str  # pending, accepted, rejected
    updated_at: datetime | None


def _member(m: Any, image_id: str) -> ImageMemberInfo:
    # Glance answers "member_id"; openstacksdk maps the request's "member" to member_id.
    member_id = getattr(m, "member_id", None) or (m.to_dict(computed=False).get("member_id") if m else None)
    return ImageMemberInfo(image_id, str(member_id or ""), str(m.status or ""), _ts(m.updated_at))


def _glance(client: CloudClient) -> GlanceV2:
    return cast(GlanceV2, client.conn.image)  # always v2 here; the SDK types it as v1 | v2


def share_image(client: CloudClient, image_id: str, project_id: str) -> ImageMemberInfo:
    """Offer the image to another project; a second call for the same project changes nothing."""
    glance = _glance(client)
    with translate("share the image"):
        image = glance.get_image(image_id)
        if image.visibility == "private":
            glance.update_image(image, visibility="shared")
        try:
            member = glance.add_member(image_id, member=project_id)
        except os_exc.ConflictException:  # already a member (an earlier attempt got through)
            member = glance.get_member(project_id, image_id)
    return _member(member, image_id)


def set_member_status(client: CloudClient, image_id: str, project_id: str, status: str) -> ImageMemberInfo:
    """The member project's answer (accepted or rejected); only the member itself may give it."""
    if status not in STATUSES:
        raise ValueError(f"not a member status: {status}")
    with translate("answer the shared image"):
        member = _glance(client).update_member(project_id, image_id, status=status)
    return _member(member, image_id)


def revoke_share(client: CloudClient, image_id: str, project_id: str) -> None:
    """Stop sharing with the project; sharing that is already gone is not an error."""
    with translate("stop sharing the image"):
        try:
            _glance(client).remove_member(project_id, image_id, ignore_missing=True)
        except os_exc.NotFoundException:
            return


def image_members(client: CloudClient, image_id: str) -> list[ImageMemberInfo]:
    """The projects the image is shared with (as its owner sees them); none for an unshared image."""
    with translate("list who the image is shared with"):
        image = _glance(client).get_image(image_id)
        if image.visibility != "shared":
            return []
        return [_member(m, image_id) for m in _glance(client).members(image_id)]


def member_status(client: CloudClient, image_id: str, project_id: str) -> ImageMemberInfo | None:
    """The membership of ``project_id`` (the caller's project) in the image, or None."""
    try:
        with translate("look up the shared image"):
            return _member(_glance(client).get_member(project_id, image_id), image_id)
    except CloudNotFound:
        return None
