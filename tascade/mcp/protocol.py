"""The agent protocol ``get_instructions`` returns: the lifecycle, the lease rules, and what
every error code means and what to do about it.

``ERRORS`` is the structured list the text is rendered from; ``tests/mcp/test_descriptions.py``
checks that every code in it is one Tascade raises and every backticked word is real.
"""

ERRORS: dict[str, str] = {
    "VALIDATION_ERROR": "An argument is missing or invalid (the details say which). Fix it.",
    "UNAUTHENTICATED": "No API key, or an unknown or revoked one. Stop; ask for a valid key.",
    "FORBIDDEN": "Your role may not do this. Do not retry.",
    "NOT_FOUND": "No such object, or not visible to your key. Check the id.",
    "CONCURRENT_UPDATE": "Writers collided; nothing changed. Retry the same call.",
    "INVALID_TRANSITION": "The task's state does not allow this. Re-read `task_context`.",
    "DEPENDENCIES_UNMET": "A prerequisite is not done yet. Pick another task.",
    "TASK_NOT_CLAIMABLE": "The task is not open for claims (done, blocked, a gate). Pick another.",
    "TASK_ALREADY_CLAIMED": "Another agent holds it. Pick another task.",
    "TASK_RESERVED": "An operator reserved it for another agent. Pick another task.",
    "PATHS_HELD": "Work in flight holds paths this task needs exclusively (see `collisions`). "
    "Pick another task; it is offered again once that work is integrated or returned.",
    "LEASE_STALE": "Your `lease_token` is not the task's live lease for you: you lost the "
    "task. Stop work on it; nothing you sent was recorded. Claim again if it is `ready`.",
    "LEASE_EXPIRED": "You did not `heartbeat` in time and lost the task. Stop work on it; "
    "claim again if it is `ready`.",
    "ARTIFACT_REQUIRED": "Call `publish_artifact` under this lease before `mark_implemented`.",
    "DEPENDENCY_CYCLE": "The edge would close a cycle. Change the plan.",
    "DEPENDENCY_EXISTS": "The edge exists already. Nothing to do.",
    "PLAN_VERSION_STALE": "The plan moved since your `base_version`. Check "
    "`preview_changeset`, then apply with `rebase`, or make a new changeset.",
    "CHANGESET_ALREADY_APPLIED": "It is applied already. Nothing to do.",
    "SELF_REVIEW": "You implemented this work; someone else must review it.",
    "GATE_NOT_PASSABLE": "A candidate is not (or no longer) `implemented`: decide "
    "`rejected`, or wait.",
}

_BODY = """\
# Tascade agent protocol

Tascade holds a plan of tasks with dependencies and hands them out to agents under leases.
Your API key decides who you are and what you may do (roles: agent, planner, reviewer).

## Task states
`backlog` (waiting for prerequisites) -> `ready` -> `claimed` -> `in_progress` ->
`implemented` (work done, artifact recorded) -> `integrated` (reviewed, merged).
`reserved`: an operator assigned it to one agent. `delegated`: split into sub-tasks.
Exception states: `blocked`, `conflict`, `abandoned`, `cancelled`.

## The agent loop
1. `list_projects`, then `list_ready` (or go straight to `claim` with `project_id` and your
   `capabilities`). An empty `claim` answer means no work fits now: wait, then try again.
2. Keep `lease.token` from the `claim` answer: it is the `lease_token` of every later write.
3. `task_context`: read the task, its spec, its prerequisites' artifacts, reviewers' notes.
   `collisions`: which tasks in flight touch the same paths, so you can keep clear of them.
4. `start`: the answer is the execution snapshot, the spec you finish against.
5. `heartbeat` well within `ttl_seconds` (every third of it) for as long as you work.
   If the answer says `plan_changed`, the task changed after you started: re-read
   `task_context` and decide whether your work still fits; you may `release` it.
6. `publish_artifact` (branch, `commit_sha`, `touched_files`, `check_status`), then
   `mark_implemented`. Reviewers take it from there.
7. Cannot finish? `release` with a `reason`. After `start` this counts as a failed attempt;
   too many block the task.
8. Too big for one piece of work? `split_task` into children (with `depends_on` among them)
   instead: your task becomes `delegated`, your lease ends, and the task completes by itself
   when its children do. Children are ordinary tasks; anyone (you too) may claim them.

## Lease rules
- One live lease per task. Every write on a held task presents its `lease_token`; Tascade
  refuses a stale or expired one and changes nothing. Never reuse a token from an old claim.
- A lease expires if not renewed; expiry is enforced on every read, so a late `heartbeat`
  fails even if nobody else took the task yet.
- On `LEASE_STALE` or `LEASE_EXPIRED`, stop work on that task at once.

## Planners
`create_project`; then plan through changesets: `create_changeset` against the plan version
`list_projects` shows, `preview_changeset` to see the impact, `apply_changeset`. A material
change releases claims on tasks not yet started; started work learns of it on `heartbeat`.

## Reviewers
`review_queue`, then `record_review` with a `verdict` (`approved`, `changes_requested`,
`rejected`) and a `rationale`. Gates: `list_checkpoints`, then `decide_checkpoint`
(`approved`, `approved_with_risk`, `rejected`).

## Events
`events` reads the audit trail in commit order; pass `next_after` as `after` to follow it.

## Errors
A failed call is a tool error whose text is {"error": {"code": ..., "message": ...,
"details": {...}}}, as in the REST API; nothing changed. The codes:
"""

PROTOCOL = _BODY + "".join(f"- `{code}`: {meaning}\n" for code, meaning in ERRORS.items())
