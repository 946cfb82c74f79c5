"""Gate decisions are evidence too: on PostgreSQL the database refuses to change them."""

from django.db import migrations

from tascade.migration_ops import run_on_postgresql


class Migration(migrations.Migration):
    dependencies = [("governance", "0005_gates_and_checkpoints")]

    operations = [
        run_on_postgresql(
            [
                "CREATE TRIGGER governance_gatedecision_append_only BEFORE UPDATE OR DELETE "
                "ON governance_gatedecision FOR EACH ROW EXECUTE FUNCTION tascade_refuse_change();"
            ],
            [
                "DROP TRIGGER IF EXISTS governance_gatedecision_append_only "
                "ON governance_gatedecision;"
            ],
        )
    ]
