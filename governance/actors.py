"""Who is acting: identity and roles, always taken from authentication, never from a body."""

from dataclasses import dataclass, field

from django.db import models

from tascade.errors import Forbidden


class Role(models.TextChoices):
    PLANNER = "planner", "Planner"
    AGENT = "agent", "Agent"
    REVIEWER = "reviewer", "Reviewer"
    OPERATOR = "operator", "Operator"
    ADMIN = "admin", "Admin"


@dataclass(frozen=True)
class Actor:
    """The authenticated caller every service receives.

    ``project_id`` is set for a key scoped to one project: such a key sees nothing else.
    """

    name: str
    roles: frozenset[str] = field(default_factory=frozenset)
    project_id: int | None = None
    api_key_id: int | None = None

    # DRF treats request.user as a user: these make an Actor one.
    is_authenticated = True
    is_anonymous = False

    def has_role(self, *roles: str) -> bool:
        return Role.ADMIN in self.roles or any(role in self.roles for role in roles)

    def require(self, *roles: str) -> None:
        if not self.has_role(*roles):
            raise Forbidden(
                f"This needs one of the roles: {', '.join(sorted(roles))}.",
                required_roles=sorted(roles),
                your_roles=sorted(self.roles),
            )

    def can_see_project(self, project_id: int) -> bool:
        return self.project_id is None or self.project_id == project_id

    @classmethod
    def system(cls) -> "Actor":
        """Tascade itself (the expiry sweep, readiness updates)."""
        return cls(name="system", roles=frozenset({Role.ADMIN}))

    @classmethod
    def for_user(cls, user) -> "Actor":
        """A signed-in Django user (admin, review pages): the username is the actor."""
        roles = {Role.ADMIN} if user.is_superuser else set()
        if not roles:
            roles = {g.name for g in user.groups.all() if g.name in Role.values}
        return cls(name=user.get_username(), roles=frozenset(roles))
