"""Tascade settings, driven by environment variables (see the table in README.md).

Defaults run on a bare machine: SQLite in ``var/``, Celery tasks executed eagerly, no Redis.
Production sets ``TASCADE_DATABASE_URL`` (PostgreSQL) and ``TASCADE_CELERY_BROKER_URL``.
"""

import warnings
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from tascade.env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("TASCADE_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("TASCADE_DEBUG", default=False)
SECRET_KEY = env_str("TASCADE_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG and env_bool("TASCADE_REQUIRE_SECRET_KEY", default=False):
        raise ImproperlyConfigured("TASCADE_SECRET_KEY must be set.")
    # Embedded default for a local trial; production sets TASCADE_SECRET_KEY.
    SECRET_KEY = "tascade-insecure-local-only-key-change-me-in-production-0123456789"

ALLOWED_HOSTS = env_list("TASCADE_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("TASCADE_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "django_celery_beat",
    "django_celery_results",
    "django_htmx",
    "tascade",
    "governance",
    "orchestration",
    "metrics",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files (the admin's, the dashboard's vendored htmx, the metrics page's chart
    # library) are served by the app itself, under runserver, gunicorn and the tests alike:
    # no web server or CDN needed, so the pages work offline.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "tascade.middleware.DomainErrorMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "tascade.urls"
WSGI_APPLICATION = "tascade.wsgi.application"
ASGI_APPLICATION = "tascade.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def _database_from_url(url: str) -> dict:
    try:
        config = dj_database_url.parse(url, conn_max_age=env_int("TASCADE_DB_CONN_MAX_AGE", 60))
    except ValueError as exc:
        raise ImproperlyConfigured(f"TASCADE_DATABASE_URL is not a database URL: {exc}") from None
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # IMMEDIATE takes SQLite's write lock when a transaction opens, so two claims
        # serialise instead of failing with "database is locked" mid-transaction.
        config["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 20}
        if config["NAME"] and config["NAME"] != ":memory:":
            Path(config["NAME"]).parent.mkdir(parents=True, exist_ok=True)
        config["CONN_MAX_AGE"] = 0
    elif config["ENGINE"] == "django.db.backends.postgresql":
        config["CONN_HEALTH_CHECKS"] = True
    return config


DATABASE_URL = env_str("TASCADE_DATABASE_URL", f"sqlite:///{VAR_DIR / 'tascade.sqlite3'}")
DATABASES = {"default": _database_from_url(DATABASE_URL)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
# Served straight from the apps' static directories, so ``collectstatic`` is optional; a
# deployment that runs it gets the files from STATIC_ROOT as well.
WHITENOISE_USE_FINDERS = True
# WhiteNoise warns when STATIC_ROOT does not exist (``collectstatic`` never ran): with the
# finders the files are served all the same.
warnings.filterwarnings("ignore", message="No directory at: ", category=UserWarning)

# The dashboard and review pages sign in with Django's own login.
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard:projects"

# --- Tascade -------------------------------------------------------------------------
TASCADE = {
    # A lease lasts this long unless its project says otherwise; heartbeats renew it.
    "DEFAULT_LEASE_TTL_SECONDS": env_int("TASCADE_DEFAULT_LEASE_TTL_SECONDS", 120, minimum=5),
    # An operator's assignment (reservation) holds the task for its assignee this long.
    "DEFAULT_RESERVATION_TTL_SECONDS": env_int(
        "TASCADE_DEFAULT_RESERVATION_TTL_SECONDS", 1800, minimum=5
    ),
    "DEFAULT_MAX_ATTEMPTS": env_int("TASCADE_DEFAULT_MAX_ATTEMPTS", 3, minimum=1),
    "PUBLIC_URL": env_str("TASCADE_PUBLIC_URL", "http://127.0.0.1:8000"),
    # How long each process trusts a resolved API key before asking the database again.
    "API_KEY_CACHE_SECONDS": env_int("TASCADE_API_KEY_CACHE_SECONDS", 5, minimum=0),
    # The expiry sweep runs this often (Celery beat) and stops itself after the soft limit.
    "SWEEP_INTERVAL_SECONDS": env_int("TASCADE_SWEEP_INTERVAL_SECONDS", 15, minimum=1),
    "SWEEP_SOFT_TIME_LIMIT": env_int("TASCADE_SWEEP_SOFT_TIME_LIMIT", 50, minimum=1),
    # Gate rules are evaluated this often (Celery beat) into checkpoints.
    "GATE_INTERVAL_SECONDS": env_int("TASCADE_GATE_INTERVAL_SECONDS", 60, minimum=1),
    # Metrics: daily roll-ups and alert rules are refreshed this often (Celery beat).
    "METRICS_INTERVAL_SECONDS": env_int("TASCADE_METRICS_INTERVAL_SECONDS", 300, minimum=1),
    "METRICS_SOFT_TIME_LIMIT": env_int("TASCADE_METRICS_SOFT_TIME_LIMIT", 240, minimum=1),
    # The event stream (orchestration/api/event_stream.py): how long one response lasts
    # before the client reconnects with Last-Event-ID, how often it looks for new events,
    # and how long it may stay silent before a keep-alive comment.
    "SSE_MAX_SECONDS": env_int("TASCADE_SSE_MAX_SECONDS", 300, minimum=1),
    "SSE_POLL_SECONDS": env_int("TASCADE_SSE_POLL_SECONDS", 1, minimum=1),
    "SSE_KEEPALIVE_SECONDS": env_int("TASCADE_SSE_KEEPALIVE_SECONDS", 15, minimum=1),
    # Webhooks (docs/webhooks.md): tries per round, exponential backoff with jitter between
    # them, short timeouts, and how often beat fans out events and resends what is due.
    "WEBHOOK_MAX_ATTEMPTS": env_int("TASCADE_WEBHOOK_MAX_ATTEMPTS", 8, minimum=1),
    "WEBHOOK_BACKOFF_SECONDS": env_int("TASCADE_WEBHOOK_BACKOFF_SECONDS", 10, minimum=0),
    "WEBHOOK_BACKOFF_MAX_SECONDS": env_int("TASCADE_WEBHOOK_BACKOFF_MAX_SECONDS", 3600, minimum=0),
    "WEBHOOK_CONNECT_TIMEOUT_SECONDS": env_int(
        "TASCADE_WEBHOOK_CONNECT_TIMEOUT_SECONDS", 3, minimum=1
    ),
    "WEBHOOK_READ_TIMEOUT_SECONDS": env_int("TASCADE_WEBHOOK_READ_TIMEOUT_SECONDS", 5, minimum=1),
    "WEBHOOK_INTERVAL_SECONDS": env_int("TASCADE_WEBHOOK_INTERVAL_SECONDS", 10, minimum=1),
}

# --- API -----------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["governance.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["governance.authentication.IsApiKeyAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["tascade.api.ApiFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "tascade.api.IdCursorPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "tascade.api.exception_handler",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Tascade API",
    "DESCRIPTION": (
        "Coordination substrate for autonomous coding agents. Authenticate with "
        "`Authorization: Bearer tsk_…`. Every error has the shape "
        '`{"error": {"code": "…", "message": "…", "details": {…}}}`.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "ENUM_NAME_OVERRIDES": {
        "TaskStateEnum": "orchestration.models.TaskState",
        "ReviewVerdictEnum": "governance.models.Verdict",
        "GateVerdictEnum": "governance.models.GateVerdict",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
    ],
}

# --- Celery --------------------------------------------------------------------------
# The broker: TASCADE_CELERY_BROKER_URL, else REDIS_URL, else an embedded one (kombu's
# filesystem transport under var/), so a bare machine runs web, worker and beat with no Redis.
CELERY_BROKER_URL = env_str("TASCADE_CELERY_BROKER_URL", "") or env_str("REDIS_URL", "")
if not CELERY_BROKER_URL:
    _BROKER_DIR = VAR_DIR / "broker"
    _BROKER_DIR.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_BROKER_DIR),
        "data_folder_out": str(_BROKER_DIR),
        "control_folder": str(_BROKER_DIR / "control"),
        "store_processed": False,
    }
CELERY_TASK_ALWAYS_EAGER = env_bool("TASCADE_CELERY_EAGER", default=False)
CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_TASK_TIME_LIMIT = env_int("TASCADE_CELERY_TASK_TIME_LIMIT", 300, minimum=1)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("TASCADE_CELERY_TASK_SOFT_TIME_LIMIT", 240, minimum=1)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Schedules are defined here; the database scheduler copies them into the admin
# (Periodic tasks), where an operator can see, pause and re-time them.
CELERY_BEAT_SCHEDULE = {
    "sweep-expired-holds": {
        "task": "orchestration.sweep_expired_holds",
        "schedule": float(TASCADE["SWEEP_INTERVAL_SECONDS"]),
        # A sweep that could not start within two intervals is dropped: a newer one follows.
        "options": {"expires": 2 * TASCADE["SWEEP_INTERVAL_SECONDS"]},
    },
    "evaluate-gates": {
        "task": "governance.evaluate_gates",
        "schedule": float(TASCADE["GATE_INTERVAL_SECONDS"]),
        "options": {"expires": 2 * TASCADE["GATE_INTERVAL_SECONDS"]},
    },
    "refresh-metrics": {
        "task": "metrics.refresh",
        "schedule": float(TASCADE["METRICS_INTERVAL_SECONDS"]),
        "options": {"expires": 2 * TASCADE["METRICS_INTERVAL_SECONDS"]},
    },
    # The safety net behind the fan-out queued when events commit: fans out what is left
    # and resends deliveries whose retry time came (or whose sender vanished).
    "dispatch-webhooks": {
        "task": "orchestration.webhooks_dispatch",
        "schedule": float(TASCADE["WEBHOOK_INTERVAL_SECONDS"]),
        "options": {"expires": 2 * TASCADE["WEBHOOK_INTERVAL_SECONDS"]},
    },
}
CELERY_TIMEZONE = TIME_ZONE

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("TASCADE_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
