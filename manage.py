#!/usr/bin/env python
import os
import sys

if __name__ == "__main__":
    if sys.argv[1:2] == ["extract_catalogue"]:
        # The catalogue pipeline uses nothing of Django: it runs before Django's set-up (0.45 s of
        # settings, apps and models), reading its two limits from the environment as the settings do.
        from orchestration.catalogue.command import main
        from orchestration.catalogue.offline import set_astropy_offline

        set_astropy_offline()  # what the settings do; astropy is imported but not used yet
        status = main(sys.argv[2:])
        # Every file is written and closed, and the workers have ended: skip the interpreter's
        # tear-down of astropy's modules and the catalogue's arrays (0.3 s).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        settings.INSTALLED_APPS  # noqa: B018 - loads the settings: a bad value is a message, not a traceback
    except ImproperlyConfigured as exc:
        sys.exit(f"Configuration error: {exc}")
    execute_from_command_line(sys.argv)
