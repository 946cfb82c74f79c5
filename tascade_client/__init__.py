"""The Tascade client: a typed Python API client and the ``tascade`` command.

HTTP only: it imports neither Django nor anything of the server.

    from tascade_client import TascadeClient

    with TascadeClient("http://127.0.0.1:8000", "tsk_…") as client:
        claim = client.claim_next(project_id=1, capabilities=["python"])
"""

from tascade_client.client import TascadeClient
from tascade_client.errors import TascadeConnectionError, TascadeError
from tascade_client.models import (
    Artifact,
    Changeset,
    ChangesetPreview,
    ClaimResult,
    Dependency,
    Event,
    EventPage,
    GateDecision,
    Heartbeat,
    Lease,
    Project,
    Review,
    Snapshot,
    Task,
    TaskContext,
    WhoAmI,
)

__all__ = [
    "Artifact",
    "Changeset",
    "ChangesetPreview",
    "ClaimResult",
    "Dependency",
    "Event",
    "EventPage",
    "GateDecision",
    "Heartbeat",
    "Lease",
    "Project",
    "Review",
    "Snapshot",
    "TascadeClient",
    "TascadeConnectionError",
    "TascadeError",
    "Task",
    "TaskContext",
    "WhoAmI",
]
