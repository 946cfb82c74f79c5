from django.apps import AppConfig


class TascadeConfig(AppConfig):
    """The project package as an app: it holds the project-wide management commands."""

    name = "tascade"
    verbose_name = "Tascade"
