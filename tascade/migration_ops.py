"""Migration operations for what only PostgreSQL has: triggers, functions, storage settings,
generated columns, GIN indexes. SQLite (the embedded default) skips them; it is not where
those rules are proven (see each migration)."""

from django.db import migrations


def _statements_on_postgresql(statements: list[str]):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        for statement in statements:
            schema_editor.execute(statement, params=None)

    return run


def run_on_postgresql(forward: list[str], backward: list[str]) -> migrations.RunPython:
    """Run ``forward`` (``backward`` when unapplied), statement by statement, on PostgreSQL."""
    return migrations.RunPython(
        _statements_on_postgresql(forward), _statements_on_postgresql(backward)
    )
