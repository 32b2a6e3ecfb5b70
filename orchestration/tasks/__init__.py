"""Celery tasks and operation handlers, one module per area.

Importing this package imports none of them: workers load the modules named by the ``imports``
setting (``CELERY_IMPORTS`` in config/settings.py), and everything else imports what it uses.
"""
