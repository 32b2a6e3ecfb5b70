"""One settings module, read from the environment (12-factor).

Defaults give the embedded demo on a laptop: SQLite and a server-less Celery
broker under ``var/``, the bundled OpenStack emulator, local batch executor,
local storage and archive, local accounts. Production sets the variables
documented in the README. A bad value stops start-up with a message.
"""

from __future__ import annotations

import os
from pathlib import Path

import environ
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from orchestration.catalogue.offline import keep_astropy_offline

keep_astropy_offline()  # from astropy's first import, whoever imports it (orchestration/catalogue/offline.py)


BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()


def _choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env.str(name, default=default)
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r} is not one of: {', '.join(choices)}")
    return value


def _int(name: str, default: int, minimum: int = 0) -> int:
    try:
        value = env.int(name, default=default)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer") from exc
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}")
    return value


VAR_DIR = Path(env.str("PORTAL_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env.bool("DEBUG", default=False)
_secret_default = "embedded-demo-key-not-for-production-" + "x" * 24
SECRET_KEY = env.str("SECRET_KEY", default=_secret_default)
EMBEDDED = env.bool("PORTAL_EMBEDDED", default=_secret_default == SECRET_KEY)
if not EMBEDDED and _secret_default == SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY must be set when PORTAL_EMBEDDED is off")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "axes",
    "portal",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "portal.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "portal.middleware.CurrentProjectMiddleware",
    "portal.views.errors.MethodNotAllowedPage",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # The portal's pages live in templates/ at the top of the project (the design card's layout);
        # APP_DIRS still serves the admin's own.
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.context_processors.portal",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'portal.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server, the worker and beat share the file.
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
else:
    DATABASES["default"]["CONN_MAX_AGE"] = _int("CONN_MAX_AGE", 60)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "portal.identity.PortalIdentityBackend",
]
IDENTITY_BACKEND = _choice("IDENTITY_BACKEND", "local", ("local", "cadc"))
CADC_REGISTRY_URL = env.str("CADC_REGISTRY_URL", default="")
CADC_TIMEOUT = _int("CADC_TIMEOUT", 20, minimum=1)

AXES_FAILURE_LIMIT = _int("AXES_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = _int("AXES_COOLOFF_MINUTES", 15, minimum=1) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]  # the portal's style sheet, scripts and vendored assets
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if EMBEDDED
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = EMBEDDED

# Encryption at rest for credentials (OpenStack application credentials,
# CADC proxy certificates): comma-separated Fernet keys, newest first. Only the embedded demo may go
# without (it derives a key from SECRET_KEY): a key derived from the secret key is lost with it.
FERNET_KEYS = env.list("FERNET_KEYS", default=[])
if not EMBEDDED and not FERNET_KEYS:
    raise ImproperlyConfigured(
        "FERNET_KEYS must be set when PORTAL_EMBEDDED is off (generate one with: python -c 'from"
        " cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
    )
for _key in FERNET_KEYS:
    try:
        Fernet(_key)
    except ValueError as exc:
        raise ImproperlyConfigured("FERNET_KEYS holds a value that is not a Fernet key") from exc

# Celery
CELERY_BROKER_URL = env.str(
    "CELERY_BROKER_URL", default=f"sqla+sqlite:///{VAR_DIR / 'celery-broker.sqlite3'}"
)
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# The modules a worker imports at start, so it knows every task (orchestration/tasks/__init__.py
# imports none of them: a page or a command that sends one task loads only what it uses).
CELERY_IMPORTS = (
    "orchestration.operations",
    "orchestration.tasks.batch",
    "orchestration.tasks.local_pulling",
    "orchestration.tasks.catalogues",
    "orchestration.tasks.cloud",
    "orchestration.tasks.cloud_actions",
    "orchestration.tasks.storage",
    "orchestration.tasks.system",
    "orchestration.tasks.workflows",
)
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # Unacknowledged tasks of a dead worker are redelivered after this long.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": _int("CELERY_VISIBILITY_TIMEOUT", 3600, 60)}
# The embedded broker (a SQLite file) is polled: config/celery.py makes workers look this often, so a
# user's action starts well within a second (Redis and RabbitMQ deliver at once).
CELERY_EMBEDDED_BROKER_POLL_SECONDS = 0.1

# Lanes: the portal's own work and users' jobs never share worker slots. Each queue has its own
# workers (`make run` starts a pool per lane; production runs `celery -A config worker -Q <lane>`
# on as many machines as needed). Routing is decided here only, by task name; config/celery.py
# reads this table when a task is sent. Tasks not listed go to "ops".
#   ops   user operations: cloud actions, storage, catalogue merge, system check, batch submit/control
#   sync  periodic reconciling: cloud sync, batch refresh, repairs
#   ccd   a catalogue's CCDs
#   jobs  local batch jobs (the queue is named by BATCH_QUEUE)
LANES = ("ops", "sync", "ccd", "jobs")
BATCH_QUEUE = env.str("BATCH_QUEUE", default="jobs")  # the Celery queue of the jobs lane
CELERY_TASK_DEFAULT_QUEUE = "ops"
CELERY_TASK_ROUTES = {
    "orchestration.operations.run_operation": {"queue": "ops"},
    "orchestration.tasks.storage.refresh_storage_usage": {"queue": "ops"},
    "orchestration.operations.repair_operations": {"queue": "sync"},
    "orchestration.tasks.cloud.sync_all_projects": {"queue": "sync"},
    "orchestration.tasks.cloud.sync_project": {"queue": "sync"},
    "orchestration.tasks.batch.refresh_batch": {"queue": "sync"},
    "orchestration.tasks.catalogues.extract_catalogue_ccd": {"queue": "ccd"},
    "orchestration.tasks.local_pulling.pull_local_jobs": {"queue": BATCH_QUEUE},
}
_CPUS = os.cpu_count() or 1
# Worker slots per lane started by `make run` (prefork processes).
CELERY_LANE_CONCURRENCY = {
    "ops": _int("CELERY_OPS_CONCURRENCY", 2, minimum=1),
    "sync": _int("CELERY_SYNC_CONCURRENCY", 1, minimum=1),
    "ccd": _int("CELERY_CCD_CONCURRENCY", _CPUS, minimum=1),
    "jobs": _int("CELERY_JOBS_CONCURRENCY", _CPUS, minimum=1),
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# Security
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = _int("SESSION_COOKIE_AGE", 12 * 3600, minimum=60)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not EMBEDDED)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not EMBEDDED)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not EMBEDDED)
SECURE_HSTS_SECONDS = _int("SECURE_HSTS_SECONDS", 0 if EMBEDDED else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not EMBEDDED
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not EMBEDDED)
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("BEHIND_PROXY", default=False) else None
)
SECURE_CONTENT_TYPE_NOSNIFF = True
# Scripts, style sheets and everything else from the portal only; inline style attributes allowed
# (progress bar widths), inline scripts, handlers and <style> elements not; Bootstrap's icons are data:
# SVGs. portal/csp.py sends it.
CONTENT_SECURITY_POLICY = env.str(
    "CONTENT_SECURITY_POLICY",
    default=(
        "default-src 'self'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline';"
        " img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none';"
        " form-action 'self'; frame-ancestors 'none'"
    ),
)
X_FRAME_OPTIONS = "DENY"
DATA_UPLOAD_MAX_MEMORY_SIZE = _int("DATA_UPLOAD_MAX_MEMORY_SIZE", 5 * 1024 * 1024, minimum=1024)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"axes": {"level": "WARNING"}, "django.server": {"level": "WARNING"}},
}

OPERATION_LEASE_SECONDS = _int("OPERATION_LEASE_SECONDS", 120, minimum=10)
CELERY_BEAT_SCHEDULE = {
    "repair-operations": {"task": "orchestration.operations.repair_operations", "schedule": 30.0},
}

# Cloud: the bundled OpenStack emulator (embedded) or a real OpenStack.
CLOUD_BACKEND = _choice("CLOUD_BACKEND", "emulator" if EMBEDDED else "openstack", ("emulator", "openstack"))
CLOUD_IS_EMULATED = CLOUD_BACKEND == "emulator"
CLOUD_EMULATOR_PORT = _int("CLOUD_EMULATOR_PORT", 8774, minimum=1)
OPENSTACK_AUTH_URL = env.str(
    "OPENSTACK_AUTH_URL",
    default=f"http://127.0.0.1:{CLOUD_EMULATOR_PORT}/identity/v3" if CLOUD_IS_EMULATED else "",
)
if CLOUD_BACKEND == "openstack" and not OPENSTACK_AUTH_URL:
    raise ImproperlyConfigured("OPENSTACK_AUTH_URL must be set when CLOUD_BACKEND=openstack")
OPENSTACK_REGION = env.str("OPENSTACK_REGION", default="")
OPENSTACK_USER_DOMAIN = env.str("OPENSTACK_USER_DOMAIN", default="Default")
OPENSTACK_PROJECT_DOMAIN = env.str("OPENSTACK_PROJECT_DOMAIN", default="Default")
OPENSTACK_INTERFACE = _choice("OPENSTACK_INTERFACE", "public", ("public", "internal", "admin"))

VM_LIFETIME_DAYS = _int("VM_LIFETIME_DAYS", 14, minimum=1)
VM_EXPIRY_WARNING_DAYS = _int("VM_EXPIRY_WARNING_DAYS", 2, minimum=0)
APP_CREDENTIAL_DAYS = _int("APP_CREDENTIAL_DAYS", 30, minimum=1)
CLOUD_SYNC_SECONDS = _int("CLOUD_SYNC_SECONDS", 5, minimum=1)
# A project is refreshed every CLOUD_SYNC_SECONDS only while a VM page of it was open within the last
# CLOUD_WATCH_SECONDS or an operation is in flight; every project is fully reconciled (flavors,
# images, key pairs, deletions) every CLOUD_FULL_SYNC_SECONDS.
CLOUD_WATCH_SECONDS = _int("CLOUD_WATCH_SECONDS", 120, minimum=1)
CLOUD_FULL_SYNC_SECONDS = _int("CLOUD_FULL_SYNC_SECONDS", 600, minimum=1)
BATCH_PACKAGES_DEFAULT = env.str("BATCH_PACKAGES_DEFAULT", default="source-extractor libcfitsio-bin")
CELERY_BEAT_SCHEDULE["sync-clouds"] = {
    "task": "orchestration.tasks.cloud.sync_all_projects",
    "schedule": float(CLOUD_SYNC_SECONDS),
}

# ---------------------------------------------------------------------------------------------------
# Batch processing (issue 5). The local executor runs jobs as sandboxed processes on the Celery
# workers (single-user or trusted installs); HTCondor submits to a schedd (shared installs).
BATCH_EXECUTOR = _choice("BATCH_EXECUTOR", "local", ("local", "htcondor"))
BATCH_EXECUTORS = [name.strip() for name in env.list("BATCH_EXECUTORS", default=[BATCH_EXECUTOR])]
for _name in BATCH_EXECUTORS:  # each item on its own (env.str would read the whole list again)
    if _name not in ("local", "htcondor"):
        raise ImproperlyConfigured(f"BATCH_EXECUTORS item {_name!r} is not one of: local, htcondor")
if BATCH_EXECUTOR not in BATCH_EXECUTORS:
    raise ImproperlyConfigured("BATCH_EXECUTOR must be one of BATCH_EXECUTORS")
BATCH_ROOT = Path(env.str("BATCH_ROOT", default=str(VAR_DIR / "batch")))
BATCH_SCRATCH_ROOT = Path(env.str("BATCH_SCRATCH_ROOT", default="/tmp/portal-batch-scratch"))
BATCH_MAX_ITEMS = _int("BATCH_MAX_ITEMS", 20000, minimum=1)
BATCH_JOB_WALL_SECONDS = _int("BATCH_JOB_WALL_SECONDS", 24 * 3600, minimum=1)
BATCH_JOB_MEMORY_MB = _int("BATCH_JOB_MEMORY_MB", 4096, minimum=16)
BATCH_JOB_OUTPUT_MB = _int("BATCH_JOB_OUTPUT_MB", 1024, minimum=1)
BATCH_JOB_SCRATCH_MB = _int("BATCH_JOB_SCRATCH_MB", 10240, minimum=1)  # what a job's scratch folder may hold
BATCH_JOB_RETRIES = _int("BATCH_JOB_RETRIES", 1)  # automatic re-runs of a job whose worker died
# The local job sandbox (orchestration/batch/sandbox.py): "required" runs every job in bubblewrap
# namespaces as an unprivileged uid of its own (BATCH_JOB_UID_BASE + n, n < BATCH_JOB_UID_COUNT, gid the
# same; no account of the machine), or not at all; "trusted" (single-user installs) runs jobs as the
# workers' user. BATCH_JOB_UID_COUNT 0 runs every job as the one BATCH_JOB_UID/BATCH_JOB_GID instead.
BATCH_SANDBOX = _choice("BATCH_SANDBOX", "required", ("required", "trusted"))
BATCH_JOB_UID_BASE = _int("BATCH_JOB_UID_BASE", 1_900_000_000, minimum=1)
BATCH_JOB_UID_COUNT = _int("BATCH_JOB_UID_COUNT", 256)  # at least the job slots of one host
if BATCH_JOB_UID_BASE + BATCH_JOB_UID_COUNT > 2**31 - 1:
    raise ImproperlyConfigured("BATCH_JOB_UID_BASE + BATCH_JOB_UID_COUNT must stay below 2**31 - 1")
BATCH_JOB_UID = _int("BATCH_JOB_UID", 65534, minimum=1)
BATCH_JOB_GID = _int("BATCH_JOB_GID", 65534, minimum=1)
BATCH_JOB_NETWORK = _choice("BATCH_JOB_NETWORK", "none", ("none", "egress"))  # egress: pasta, no host ports
BATCH_JOB_NETWORK_UID = _int("BATCH_JOB_NETWORK_UID", 65533, minimum=1)  # runs pasta; not BATCH_JOB_UID
if BATCH_JOB_NETWORK == "egress" and BATCH_JOB_NETWORK_UID == BATCH_JOB_UID:
    raise ImproperlyConfigured("BATCH_JOB_NETWORK_UID must differ from BATCH_JOB_UID")
if BATCH_JOB_UID_BASE <= BATCH_JOB_NETWORK_UID < BATCH_JOB_UID_BASE + BATCH_JOB_UID_COUNT:
    raise ImproperlyConfigured(
        "BATCH_JOB_NETWORK_UID must not be one of the job uids (BATCH_JOB_UID_BASE ...)"
    )
BATCH_JOB_MAX_PROCESSES = _int("BATCH_JOB_MAX_PROCESSES", 256, minimum=8)
BATCH_JOB_READONLY_PATHS = [Path(p) for p in env.list("BATCH_JOB_READONLY_PATHS", default=[])]
for _path in BATCH_JOB_READONLY_PATHS:
    if not _path.is_absolute():
        raise ImproperlyConfigured(f"BATCH_JOB_READONLY_PATHS: {_path} is not an absolute path")
BATCH_REFRESH_SECONDS = _int("BATCH_REFRESH_SECONDS", 3, minimum=1)
# The queue page's pool summary names every user with jobs (condor_q -all) to staff; to everyone if on.
BATCH_QUEUE_ALL_USERS = env.bool("BATCH_QUEUE_ALL_USERS", default=False)
HTCONDOR_POOL_PROFILE = _choice("HTCONDOR_POOL_PROFILE", "v1", ("v1", "csv2", "none"))
HTCONDOR_COLLECTOR = env.str("HTCONDOR_COLLECTOR", default="")  # empty: the local schedd
HTCONDOR_SCHEDD = env.str("HTCONDOR_SCHEDD", default="")  # schedd name at the collector
# Workflows: condor_dagman as installed on the schedd's machine (the DAGMan job runs there, spooled).
HTCONDOR_DAGMAN = env.str("HTCONDOR_DAGMAN", default="/usr/bin/condor_dagman")
if not HTCONDOR_DAGMAN.startswith("/") or any(c in HTCONDOR_DAGMAN for c in '\n\r"\\ '):
    raise ImproperlyConfigured("HTCONDOR_DAGMAN must be an absolute path without spaces or quotes")
CELERY_BEAT_SCHEDULE["refresh-batch"] = {
    "task": "orchestration.tasks.batch.refresh_batch",
    "schedule": float(BATCH_REFRESH_SECONDS),
}

# ---------------------------------------------------------------------------------------------------
# Storage and certificates (issue 7). Storage is a local directory per user (the embedded default) or
# the user's VOSpace, reached with VOSPACE_TOKEN (a service token, for tests and demos) or the user's
# proxy certificate (obtained at CADC sign-in). Uploads stream to the backend in 1 MiB chunks.
STORAGE_BACKEND = _choice("STORAGE_BACKEND", "local", ("local", "vospace"))
STORAGE_ROOT = Path(env.str("STORAGE_ROOT", default=str(VAR_DIR / "storage")))  # + /<username>
STORAGE_UPLOAD_MAX_BYTES = _int("STORAGE_UPLOAD_MAX_BYTES", 2 * 1024**3, minimum=1)
STORAGE_PAGE_SIZE = _int("STORAGE_PAGE_SIZE", 100, minimum=10)
STORAGE_PREVIEW_MAX_BYTES = _int("STORAGE_PREVIEW_MAX_BYTES", 512 * 1024**2, minimum=1024)  # FITS previews
VOSPACE_BASE_URI = env.str("VOSPACE_BASE_URI", default="vos:{username}")
if "{username}" not in VOSPACE_BASE_URI or not VOSPACE_BASE_URI.startswith("vos:"):
    raise ImproperlyConfigured("VOSPACE_BASE_URI must look like 'vos:{username}' or 'vos:{username}/portal'")
VOSPACE_TOKEN = env.str("VOSPACE_TOKEN", default="")
PROXY_CERT_DAYS = _int("PROXY_CERT_DAYS", 10, minimum=1)
if PROXY_CERT_DAYS > 30:
    raise ImproperlyConfigured("PROXY_CERT_DAYS must be 30 or less (CADC's limit)")
# Where a proxy certificate is written (mode 0600) while the vos client uses it; empty: /dev/shm (memory).
PROXY_CERT_DIR = env.str("PROXY_CERT_DIR", default="")

# ---------------------------------------------------------------------------------------------------
# Catalogues (issue 6). Input images come from CADC (cadcdata) or a local archive directory that the
# embedded demo fills with synthetic MegaCam-like images. Work files and cached previews live under
# CATALOGUE_WORK_DIR (one folder per catalogue); the catalogues themselves go to the user's storage.
ARCHIVE_BACKEND = _choice("ARCHIVE_BACKEND", "local" if EMBEDDED else "cadc", ("local", "cadc"))
ARCHIVE_DIR = Path(env.str("ARCHIVE_DIR", default=str(VAR_DIR / "archive")))
CATALOGUE_WORK_DIR = Path(env.str("CATALOGUE_WORK_DIR", default=str(VAR_DIR / "catalogues")))
CATALOGUE_MAX_DECOMPRESSED_BYTES = _int("CATALOGUE_MAX_DECOMPRESSED_BYTES", 2 * 1024**3, minimum=1024)
CATALOGUE_MAX_CCD_PIXELS = _int("CATALOGUE_MAX_CCD_PIXELS", 40_000_000, minimum=1024)  # per image HDU
CATALOGUE_UPLOAD_MAX_BYTES = _int("CATALOGUE_UPLOAD_MAX_BYTES", 1024**3, minimum=1024)
CATALOGUE_MAX_OBSERVATIONS = _int("CATALOGUE_MAX_OBSERVATIONS", 200, minimum=1)  # per "many IDs" form
CATALOGUE_DEMO_IMAGES = _int("CATALOGUE_DEMO_IMAGES", 4)  # synthetic images `bootstrap` puts in the archive

# Batch outputs, proxies and local dispatch (issues 5 and 7). Local jobs are pulled by worker slots:
# a submission sends at most BATCH_PULLERS messages (set it to at least the job slots of all workers);
# a puller hands its slot back after BATCH_PULL_SECONDS. Beat wakes workers again for idle jobs nobody
# pulls, at most every BATCH_WAKE_SECONDS. A proxy certificate must outlive BATCH_PROXY_MIN_SECONDS
# when jobs are sent.
BATCH_PULLERS = _int("BATCH_PULLERS", 16, minimum=1)
BATCH_PULL_SECONDS = _int("BATCH_PULL_SECONDS", 60, minimum=1)
BATCH_WAKE_SECONDS = _int("BATCH_WAKE_SECONDS", 30, minimum=1)
BATCH_PROXY_MIN_SECONDS = _int("BATCH_PROXY_MIN_SECONDS", BATCH_JOB_WALL_SECONDS, minimum=0)
