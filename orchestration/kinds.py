"""Every kind of operation, and the function that runs it: the one table to read.

A handler takes the claimed ``Operation`` and a ``Progress`` and returns when the work is done;
it raises ``Wait`` to be called again later, ``TransientError`` to be retried with back-off and
``UserFacingError`` to fail with its message (``orchestration/operations.py``).

Handlers are named by their dotted path, as Django names middleware and Celery the modules of its
tasks: ``run_operation`` imports a handler's module when an operation of that kind first runs (a
worker has them all from its start, ``CELERY_IMPORTS``). So starting an operation from a page loads
none of the cloud, batch and catalogue libraries, and handlers use the runner (``Progress``,
``run_operation``) without the runner importing them.
"""

from __future__ import annotations

HANDLERS: dict[str, str] = {
    # sign-in and cloud (orchestration/tasks/cloud.py, cloud_actions.py)
    "cloud_connect": "orchestration.tasks.cloud.cloud_connect",
    "keypair_import": "orchestration.tasks.cloud_actions.keypair_import",
    "keypair_delete": "orchestration.tasks.cloud_actions.keypair_delete",
    "fip_allocate": "orchestration.tasks.cloud_actions.fip_allocate",
    "fip_associate": "orchestration.tasks.cloud_actions.fip_associate",
    "fip_disassociate": "orchestration.tasks.cloud_actions.fip_disassociate",
    "fip_release": "orchestration.tasks.cloud_actions.fip_release",
    "vm_launch": "orchestration.tasks.cloud_actions.vm_launch",
    "vm_action": "orchestration.tasks.cloud_actions.vm_action",
    "vm_delete": "orchestration.tasks.cloud_actions.vm_delete",
    "vm_snapshot": "orchestration.tasks.cloud_actions.vm_snapshot",
    "vm_console": "orchestration.tasks.cloud_actions.vm_console",
    "vm_readiness": "orchestration.tasks.cloud_actions.vm_readiness",
    "image_delete": "orchestration.tasks.cloud_actions.image_delete",
    "image_share": "orchestration.tasks.cloud_actions.image_share",
    # batch and workflows (orchestration/tasks/batch.py, workflows.py)
    "batch_submit": "orchestration.tasks.batch.batch_submit",
    "batch_control": "orchestration.tasks.batch.batch_control",
    "workflow_submit": "orchestration.tasks.workflows.workflow_submit",
    "workflow_control": "orchestration.tasks.workflows.workflow_control",
    # catalogues (orchestration/tasks/catalogues.py)
    "catalogue_run": "orchestration.tasks.catalogues.catalogue_run",
    # the portal itself (orchestration/tasks/system.py)
    "system_check": "orchestration.tasks.system.system_check",
}

# Kinds that are never run: rows written as already finished, to tell the user in the activity panel
# that something happened (a batch or a workflow ended, the cloud changed outside the portal).
RECORDS = ("batch_finished", "workflow_finished", "cloud_notice")
