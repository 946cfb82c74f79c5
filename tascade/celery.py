"""The Celery application: ``celery -A tascade worker`` and ``celery -A tascade beat``."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tascade.settings")

app = Celery("tascade")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
