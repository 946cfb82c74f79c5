"""Find the in-flight tasks whose paths may meet given paths by index, not by reading them
all (PostgreSQL).

``tascade_path_keys(project, expected, exclusive, touched)`` turns a task's paths into
keys: for each path, its anchor (the segments before the first one with ``*`` or ``?``,
as ``orchestration.paths.anchor``) as ``<project>|a|<anchor>``, and every segment prefix of
that anchor as ``<project>|p|<prefix>``. Two patterns can overlap only if one's anchor is
a prefix of the other's, so an in-flight task can meet a pattern with anchor ``A`` only if
its keys hold ``a|`` of a prefix of ``A`` or ``p|A`` (``scheduling.meeting_keys`` builds
that side). A touched file is treated as a glob here: its anchor can only come out shorter,
which finds more rows, never fewer. The exact comparison still runs in Python on the rows
found; the index only spares reading every task in flight (implemented work waiting for
review included) on every claim and every artifact.

The keys are a stored generated column, ``path_keys``, filled by PostgreSQL on every insert
and update whatever writes the row (services, bulk writes, changesets), and only for tasks
in flight (``NULL`` otherwise, so readiness updates of a thousand dependents pay nothing).
It is not a model field: Django never reads or writes it, only ``scheduling.in_flight``
filters on it. A stored column rather than an index on the function: the planner then
rechecks and estimates a plain array overlap, never the function per row. A partial GIN
index over it (``fastupdate`` off: searches must not scan a pending list) serves the read.
SQLite (the embedded default) has neither and reads every task in flight instead.
"""

from django.db import migrations

from tascade.migration_ops import run_on_postgresql

FORWARD = [
    """
    CREATE FUNCTION tascade_path_keys(project bigint, expected jsonb, exclusive jsonb, touched jsonb)
    RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
        WITH anchors AS (
            SELECT DISTINCT regexp_replace(path, '(^|/)[^/]*[*?].*$', '') AS anchor
            FROM jsonb_array_elements_text(
                coalesce(expected, '[]') || coalesce(exclusive, '[]') || coalesce(touched, '[]')
            ) AS path
        )
        SELECT coalesce(array_agg(DISTINCT key), '{}') FROM (
            SELECT project || '|a|' || anchor AS key FROM anchors
            UNION ALL
            SELECT project || '|p|' || array_to_string((string_to_array(anchor, '/'))[1:n], '/')
            FROM anchors,
                generate_series(0, coalesce(array_length(string_to_array(anchor, '/'), 1), 0)) AS n
        ) AS keys
    $$;
    """,
    """
    ALTER TABLE orchestration_task ADD COLUMN path_keys text[] GENERATED ALWAYS AS (
        CASE WHEN state IN ('claimed', 'in_progress', 'implemented')
        THEN tascade_path_keys(project_id, expected_paths, exclusive_paths, touched_paths) END
    ) STORED;
    """,
    """
    CREATE INDEX task_in_flight_path_keys ON orchestration_task USING gin (path_keys)
    WITH (fastupdate = off)
    WHERE state IN ('claimed', 'in_progress', 'implemented');
    """,
]

BACKWARD = [
    "DROP INDEX IF EXISTS task_in_flight_path_keys;",
    "ALTER TABLE orchestration_task DROP COLUMN IF EXISTS path_keys;",
    "DROP FUNCTION IF EXISTS tascade_path_keys(bigint, jsonb, jsonb, jsonb);",
]


class Migration(migrations.Migration):
    dependencies = [("orchestration", "0010_task_paths_and_overlaps")]

    operations = [run_on_postgresql(FORWARD, BACKWARD)]
