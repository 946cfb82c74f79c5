"""Gate decisions are evidence too: on PostgreSQL the database refuses to change them."""

from django.db import migrations


def _run(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, params=None)

    return run


class Migration(migrations.Migration):
    dependencies = [("governance", "0005_gates_and_checkpoints")]

    operations = [
        migrations.RunPython(
            _run(
                "CREATE TRIGGER governance_gatedecision_append_only BEFORE UPDATE OR DELETE "
                "ON governance_gatedecision FOR EACH ROW EXECUTE FUNCTION tascade_refuse_change();"
            ),
            _run(
                "DROP TRIGGER IF EXISTS governance_gatedecision_append_only "
                "ON governance_gatedecision;"
            ),
        )
    ]
