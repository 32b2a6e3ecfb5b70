"""What the dashboard counts, gathered from the database only (never from outside systems)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from portal.models import Operation


@dataclass
class Step:
    title: str
    text: str
    url_name: str
    done: bool


@dataclass
class Summary:
    counts: dict[str, dict[str, Any]] = field(default_factory=dict)  # label -> value, url, detail
    storage_used: int | None = None
    steps: list[Step] = field(default_factory=list)
    active_operations: int = 0
    alerts: list[str] = field(default_factory=list)

    @property
    def next_step(self) -> Step | None:
        return next((s for s in self.steps if not s.done), None)


def for_user(user: Any, project: Any) -> Summary:
    ops = Operation.objects.for_user(user)
    summary = Summary(
        active_operations=ops.active().count(),
    )
    for contribute in CONTRIBUTORS:
        contribute(summary, user, project)
    return summary


# Each area adds its counts and tutorial steps; the order is the CANFAR tutorial.
CONTRIBUTORS: list[Any] = []
