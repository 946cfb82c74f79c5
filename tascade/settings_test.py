"""Test settings: the real settings, pointed at the local PostgreSQL unless told otherwise.

The suite proves locking rules, so it runs on PostgreSQL by default; set
``TASCADE_DATABASE_URL`` to run it elsewhere.
"""

import os

os.environ.setdefault("TASCADE_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/tascade")

from tascade.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = True
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
