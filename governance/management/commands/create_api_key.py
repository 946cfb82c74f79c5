"""``manage.py create_api_key --actor NAME --roles admin[,…] [--project SLUG]``

Prints the raw key on its last line (and nowhere else, ever), so scripts can capture it with
``| tail -n 1``.
"""

from django.core.management.base import BaseCommand, CommandError

from governance.actors import Actor
from governance.services.api_keys import api_key_create
from orchestration.models import Project
from tascade.errors import DomainError


class Command(BaseCommand):
    help = "Create an API key and print the raw key (shown once) on the last line."

    def add_arguments(self, parser):
        parser.add_argument("--actor", required=True, help="The identity the key acts as.")
        parser.add_argument(
            "--roles", required=True, help="Comma-separated: planner,agent,reviewer,operator,admin"
        )
        parser.add_argument("--project", help="Slug or id of the one project the key may see.")
        parser.add_argument("--label", default="")

    def handle(self, *args, actor, roles, project, label, **options):
        scope = None
        if project:
            lookup = {"pk": int(project)} if project.isdigit() else {"slug": project}
            scope = Project.objects.filter(**lookup).first()
            if scope is None:
                raise CommandError(f"No project {project!r}.")
        try:
            issued = api_key_create(
                actor=Actor.system(),
                key_actor=actor,
                roles=[r.strip() for r in roles.split(",") if r.strip()],
                project=scope,
                label=label,
            )
        except DomainError as exc:
            raise CommandError(f"{exc.message} {exc.details or ''}".strip()) from None
        key = issued.api_key
        where = f"project {scope.slug}" if scope else "all projects"
        roles = ", ".join(key.roles)
        self.stderr.write(f"API key {key.prefix}… for {key.actor} ({roles}; {where})")
        self.stdout.write(issued.raw_key)
