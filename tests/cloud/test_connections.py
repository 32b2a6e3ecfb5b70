"""A Celery worker syncing two projects of the real cloud holds a few sockets per service, flat.

The portal once opened a new session per call and never closed it: after five minutes of the 5 s
sync, Neutron's pool of 100 connections was full and it stopped answering anyone. Here a real
worker process syncs proj-a and proj-b once a second (the test plays beat) and the sockets of its
process tree to each service are counted as it goes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import psutil
import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.utils import timezone

from orchestration.cloud.client import POOL_MAXSIZE, close_sessions, connect_with_password
from orchestration.tasks.cloud import sync_all_projects
from portal.models import Credential, Operation, Project
from tests.cloud.conftest import REAL, clean_real_cloud, drive, real_cloud_or_skip
from tests.conftest import ROOT, worker_env

pytestmark = [pytest.mark.real_cloud, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SERVICES = {5000: "keystone", 8774: "nova", 9292: "glance", 9696: "neutron"}
SECONDS = int(os.environ.get("CLOUD_SOCKET_TEST_SECONDS", "75"))
PER_SERVICE = POOL_MAXSIZE  # all sessions of a process share one pool of at most this many per service


def _sockets(pid: int) -> Counter[str]:
    counts: Counter[str] = Counter()
    root = psutil.Process(pid)
    for proc in [root, *root.children(recursive=True)]:
        try:
            connections = proc.net_connections(kind="tcp")
        except psutil.NoSuchProcess:
            continue
        for conn in connections:
            if conn.raddr and conn.raddr.port in SERVICES and conn.status == psutil.CONN_ESTABLISHED:
                counts[SERVICES[conn.raddr.port]] += 1
    return counts


def _worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    queues = sorted(
        {
            "celery",
            *(
                r.get("queue", "celery")
                for r in (getattr(settings, "CELERY_TASK_ROUTES", None) or {}).values()
            ),
        }
    )
    log = open(settings.VAR_DIR / "worker-sockets.log", "wb")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--loglevel", "INFO", "--concurrency", "1",
         "-Q", ",".join(queues), "-n", f"sockets-{os.getpid()}@%h", "--without-gossip", "--without-mingle"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


def test_a_worker_syncing_two_projects_holds_a_few_sockets_per_service_and_no_more_over_time(
    settings: Any,
) -> None:
    settings.OPENSTACK_AUTH_URL = real_cloud_or_skip()
    user = User.objects.create_user(REAL.username, password=REAL.password)
    # The sign-in page's work, without its dispatch to the broker: a token, then cloud_connect here.
    with connect_with_password(settings.OPENSTACK_AUTH_URL, REAL.username, REAL.password) as signed_in:
        token, expires = signed_in.token, signed_in.token_expiry()
    Credential.objects.create(user=user, kind="keystone_token", secret=token, expires_at=expires)
    op = Operation.objects.create(owner=user, kind="cloud_connect", title="Connect", target="keystone")
    assert drive(op).state == "succeeded"
    close_sessions()  # the worker process opens its own
    projects = list(Project.objects.filter(name__in=[REAL.project, REAL.other]))
    assert len(projects) == 2
    env = worker_env() | {"OPENSTACK_AUTH_URL": settings.OPENSTACK_AUTH_URL}
    worker = _worker(env)
    samples: list[Counter[str]] = []
    try:
        start = time.monotonic()
        while time.monotonic() - start < SECONDS:
            Project.objects.filter(pk__in=[p.pk for p in projects]).update(viewed_at=timezone.now())
            sync_all_projects.apply()  # beat's job: queue a sync of each watched project
            if time.monotonic() - start > 15:  # after the first syncs have opened what they keep
                samples.append(_sockets(worker.pid))
            time.sleep(1)
        synced = Project.objects.filter(
            pk__in=[p.pk for p in projects], synced_at__gte=timezone.now() - timedelta(seconds=10)
        )
        assert synced.count() == 2, (settings.VAR_DIR / "worker-sockets.log").read_text()[-3000:]
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        clean_real_cloud()
    assert samples
    first, last = samples[: len(samples) // 3], samples[-(len(samples) // 3) :]
    for service in ("keystone", "nova", "glance", "neutron"):
        most = max(s[service] for s in samples)
        print(
            f"{service}: at most {most} sockets, first third {[s[service] for s in first]}, last {[s[service] for s in last]}"
        )
        assert most <= PER_SERVICE, (service, [s[service] for s in samples])
        assert max(s[service] for s in last) <= max(max(s[service] for s in first), 1), (service, samples)
    assert max(s["nova"] for s in samples) >= 1  # the sessions are kept open between syncs
