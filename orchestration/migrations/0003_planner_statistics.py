"""Keep the query planner's statistics fresh on the big, fast-changing tables (PostgreSQL).

By default autovacuum re-analyses a table only after 10% of its rows changed: a plan import
of thousands of tasks into a large table would leave claim-next planned on stale row counts
(a sort of every ready task instead of an index scan) for hours. A fixed threshold instead.
"""

from django.db import migrations

from tascade.migration_ops import run_on_postgresql

TABLES = ("orchestration_task", "orchestration_dependency")
SET = "SET (autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 5000)"
RESET = "RESET (autovacuum_analyze_scale_factor, autovacuum_analyze_threshold)"


class Migration(migrations.Migration):
    dependencies = [("orchestration", "0002_database_guards")]

    operations = [
        run_on_postgresql(
            [f"ALTER TABLE {table} {SET}" for table in TABLES],
            [f"ALTER TABLE {table} {RESET}" for table in TABLES],
        )
    ]
