"""What the VM pages need to know about batch processing, kept in one place."""

from __future__ import annotations

from typing import Any

from portal.models.batch import Submission


def snapshots_in_use(snapshots: list[Any]) -> dict[int, str]:
    """Map image pk -> reason, for snapshots that unfinished batch submissions boot workers from."""
    ids = {s.external_id: s.pk for s in snapshots}
    busy: dict[int, str] = {}
    unfinished = Submission.objects.filter(state__in=[*Submission.ACTIVE_STATES, Submission.PAUSED])
    for sub in unfinished.filter(image_id__in=list(ids)).only("name", "image_id"):  # paused: the rest may run
        busy[ids[sub.image_id]] = f"batch submission “{sub.name}” still runs its jobs on it."
    return busy
