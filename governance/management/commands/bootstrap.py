"""``manage.py bootstrap``: first-run setup for a local trial.

Migrates the database, and the first time only creates an admin login and an admin API key
and prints them once, with the addresses to open. Later runs print the addresses only.
"""

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from governance.actors import Actor, Role
from governance.services.api_keys import api_key_create


class Command(BaseCommand):
    help = "Migrate, and on a first run create an admin login and API key (printed once)."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument("--url", default=settings.TASCADE["PUBLIC_URL"])

    def handle(self, *args, username, url, **options):
        call_command("migrate", interactive=False, verbosity=0)
        url = url.rstrip("/")
        user_model = get_user_model()
        lines = []
        if not user_model.objects.filter(is_superuser=True).exists():
            password = secrets.token_urlsafe(12)
            user_model.objects.create_superuser(username=username, email="", password=password)
            issued = api_key_create(
                actor=Actor.system(), key_actor=username, roles=[Role.ADMIN], label="bootstrap"
            )
            lines += [
                "First run: an admin login and an admin API key were created.",
                "They are shown this once only; keep them somewhere safe.",
                "",
                f"  admin login   {username} / {password}",
                f"  admin API key {issued.raw_key}",
                "",
            ]
        lines += [
            f"  dashboard     {url}/projects/",
            f"  admin         {url}/admin/",
            f"  API docs      {url}/api/docs/",
            f"  API           {url}/api/v1/",
        ]
        self.stdout.write("\n".join(lines))
