"""Reviews are evidence: on PostgreSQL the database refuses to change or delete them."""

from django.db import migrations

from tascade.migration_ops import run_on_postgresql


class Migration(migrations.Migration):
    dependencies = [
        ("governance", "0002_reviews"),
        ("orchestration", "0002_database_guards"),  # defines tascade_refuse_change()
    ]

    operations = [
        run_on_postgresql(
            [
                "CREATE TRIGGER governance_review_append_only BEFORE UPDATE OR DELETE "
                "ON governance_review FOR EACH ROW EXECUTE FUNCTION tascade_refuse_change();"
            ],
            ["DROP TRIGGER IF EXISTS governance_review_append_only ON governance_review;"],
        )
    ]
