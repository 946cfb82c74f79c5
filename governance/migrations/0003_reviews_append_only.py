"""Reviews are evidence: on PostgreSQL the database refuses to change or delete them."""

from django.db import migrations


def _run(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, params=None)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("governance", "0002_reviews"),
        ("orchestration", "0002_database_guards"),  # defines tascade_refuse_change()
    ]

    operations = [
        migrations.RunPython(
            _run(
                "CREATE TRIGGER governance_review_append_only BEFORE UPDATE OR DELETE "
                "ON governance_review FOR EACH ROW EXECUTE FUNCTION tascade_refuse_change();"
            ),
            _run("DROP TRIGGER IF EXISTS governance_review_append_only ON governance_review;"),
        )
    ]
