"""``manage.py serve``: everything on one machine, for a local trial.

Bootstraps (migrate; first-run admin login and key), then runs a Celery worker with an
embedded beat (the expiry sweep and every other schedule) beside the web server, and stops
the worker when the server stops. Production runs these as separate processes instead
(see docs/operations.md).
"""

import subprocess
import sys

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Bootstrap, then run the web server with a Celery worker and beat beside it."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", default="8000")
        parser.add_argument("--no-worker", action="store_true", help="Web server only.")

    def handle(self, *args, host, port, no_worker, **options):
        call_command("bootstrap", url=f"http://{host}:{port}")
        worker = None
        if not no_worker:
            worker = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "tascade",
                    "worker",
                    "--beat",
                    "--pool",
                    "solo",
                    "--loglevel",
                    "INFO",
                ],
                cwd=settings.BASE_DIR,
            )
            self.stdout.write(f"  worker + beat pid {worker.pid}")
        try:
            call_command("runserver", f"{host}:{port}", use_reloader=False)
        finally:
            if worker is not None:
                worker.terminate()
                try:
                    worker.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    worker.kill()
