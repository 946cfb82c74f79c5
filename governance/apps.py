from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "governance"
    verbose_name = "Governance"

    def ready(self) -> None:
        from governance import schema  # noqa: F401  (registers the OpenAPI auth scheme)
