"""The Tascade worker runner and integrator: they make a Tascade server run a fleet.

``Runner`` claims ready tasks and runs an agent command on each in its own git worktree
(``tascade work``); ``Integrator`` merges approved work into the integration branch in order
(``tascade integrate``). Like ``tascade_client``, on which it is built, it imports nothing
of the server. See docs/worker.md.
"""

from tascade_worker.config import IntegrateConfig, WorkConfig
from tascade_worker.integrator import IntegrationSummary, Integrator
from tascade_worker.runner import Runner, Summary

__all__ = ["IntegrateConfig", "IntegrationSummary", "Integrator", "Runner", "Summary", "WorkConfig"]
