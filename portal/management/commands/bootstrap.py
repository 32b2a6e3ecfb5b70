"""Prepare the embedded install: migrate, create the demo account and its sample data.

Safe to run again: it reuses what is there.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from portal.demo import DEMO_PASSWORD, DEMO_PROJECTS, DEMO_USERNAME, fill_demo_archive
from portal.models import Membership, Project


class Command(BaseCommand):
    help = "Migrate the database and create the demo account with sample data (embedded install)."

    def handle(self, *args: Any, **options: Any) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        if not settings.EMBEDDED:
            self.stdout.write("Migrated. Not an embedded install: no demo account created.")
            return
        user_model = get_user_model()
        user, created = user_model.objects.get_or_create(username=DEMO_USERNAME)
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save()
        for name in DEMO_PROJECTS:
            project, _ = Project.objects.get_or_create(name=name, defaults={"external_id": f"pending:{name}"})
            Membership.objects.get_or_create(user=user, project=project)
        for step in BOOTSTRAP_STEPS:
            step(self.stdout)
        verb = "Created" if created else "Reusing"
        self.stdout.write(f"{verb} the demo account: username {DEMO_USERNAME}, password {DEMO_PASSWORD}")


# Areas add their sample data here (archive images, ...).
BOOTSTRAP_STEPS: list[Any] = []
BOOTSTRAP_STEPS.append(fill_demo_archive)  # synthetic images in the local archive (catalogues)
