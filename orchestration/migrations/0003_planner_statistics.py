"""Keep the query planner's statistics fresh on the big, fast-changing tables (PostgreSQL).

By default autovacuum re-analyses a table only after 10% of its rows changed: a plan import
of thousands of tasks into a large table would leave claim-next planned on stale row counts
(a sort of every ready task instead of an index scan) for hours. A fixed threshold instead.
"""

from django.db import migrations

TABLES = ("orchestration_task", "orchestration_dependency")


def _set(value_sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        for table in TABLES:
            schema_editor.execute(f"ALTER TABLE {table} {value_sql}", params=None)

    return run


class Migration(migrations.Migration):
    dependencies = [("orchestration", "0002_database_guards")]

    operations = [
        migrations.RunPython(
            _set(
                "SET (autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 5000)"
            ),
            _set("RESET (autovacuum_analyze_scale_factor, autovacuum_analyze_threshold)"),
        )
    ]
