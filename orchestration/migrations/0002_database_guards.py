"""Rules the database itself keeps, on PostgreSQL.

- Events, artifacts and execution snapshots are append-only: UPDATE and DELETE raise.
- Every event is stamped with its writing transaction's id, so readers can return events in
  commit order and hold back those of transactions still in flight (see selectors).

SQLite (the embedded default) gets neither: it serialises writers, and it is not where the
rules are proven.
"""

from django.db import migrations

from tascade.migration_ops import run_on_postgresql

APPEND_ONLY_TABLES = ("orchestration_event", "orchestration_artifact", "orchestration_executionsnapshot")

FORWARD = [
    """
    CREATE FUNCTION tascade_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
            USING ERRCODE = 'integrity_constraint_violation';
    END $$;
    """,
    """
    CREATE FUNCTION tascade_stamp_txid() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        NEW.txid := pg_current_xact_id()::text::bigint;
        RETURN NEW;
    END $$;
    """,
    """
    CREATE TRIGGER orchestration_event_stamp_txid BEFORE INSERT ON orchestration_event
    FOR EACH ROW EXECUTE FUNCTION tascade_stamp_txid();
    """,
    *[
        f"""
        CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
        FOR EACH ROW EXECUTE FUNCTION tascade_refuse_change();
        """
        for table in APPEND_ONLY_TABLES
    ],
]

BACKWARD = [
    *[f"DROP TRIGGER IF EXISTS {table}_append_only ON {table};" for table in APPEND_ONLY_TABLES],
    "DROP TRIGGER IF EXISTS orchestration_event_stamp_txid ON orchestration_event;",
    "DROP FUNCTION IF EXISTS tascade_stamp_txid();",
    "DROP FUNCTION IF EXISTS tascade_refuse_change();",
]


class Migration(migrations.Migration):
    dependencies = [("orchestration", "0001_initial")]

    operations = [run_on_postgresql(FORWARD, BACKWARD)]
