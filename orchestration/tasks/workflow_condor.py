"""Workflows on an HTCondor pool: written with htcondor2.dags, submitted with Submit.from_dag."""

from __future__ import annotations

from typing import Any

from orchestration.errors import UserFacingError
from portal.models import Workflow


def submit_dag(wf: Workflow, progress: Any) -> None:
    raise UserFacingError("Workflows on the HTCondor pool are not available yet; choose the local workers.")


def control_dag(wf: Workflow, action: str) -> None:
    raise UserFacingError("Workflows on the HTCondor pool are not available yet.")
