"""Bearer API key authentication for DRF: turns ``Authorization: Bearer tsk_…`` into an Actor."""

from datetime import timedelta

from django.utils import timezone
from rest_framework import authentication, exceptions, permissions

from governance import key_cache
from governance.actors import Actor
from governance.models import ApiKey
from governance.services.api_keys import KEY_PREFIX, hash_key

# last_used_at is informational: refresh it at most this often so the hot path stays read-only.
_LAST_USED_RESOLUTION = timedelta(minutes=5)


def actor_for_raw_key(raw_key: str) -> Actor | None:
    """The actor a raw key authenticates as, or None for an unknown or revoked key."""
    if not raw_key.startswith(KEY_PREFIX):
        return None
    key_hash = hash_key(raw_key)
    cached = key_cache.recall(key_hash)
    if cached is not None:
        return cached
    row = (
        ApiKey.objects.filter(key_hash=key_hash, revoked_at__isnull=True)
        .values("pk", "actor", "roles", "project_id", "last_used_at")
        .first()
    )
    if row is None:
        return None
    now = timezone.now()
    if row["last_used_at"] is None or now - row["last_used_at"] > _LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=row["pk"]).update(last_used_at=now)
    actor = Actor(
        name=row["actor"],
        roles=frozenset(row["roles"]),
        project_id=row["project_id"],
        api_key_id=row["pk"],
    )
    key_cache.remember(key_hash, actor)
    return actor


def bearer_key(header: str) -> str:
    """The raw key of an ``Authorization: Bearer tsk_…`` header (a non-empty header)."""
    scheme, _, raw_key = header.partition(" ")
    if scheme.lower() != "bearer" or not raw_key.strip():
        raise exceptions.AuthenticationFailed("Use 'Authorization: Bearer tsk_…'.")
    return raw_key.strip()


def authenticate_key(raw_key: str | None) -> Actor:
    """The actor of a raw key; DRF's authentication errors for none, an unknown or a revoked
    one. Every interface (REST, MCP over HTTP and stdio) authenticates through this."""
    if not raw_key:
        raise exceptions.NotAuthenticated("Give an API key: 'Authorization: Bearer tsk_…'.")
    actor = actor_for_raw_key(raw_key)
    if actor is None:
        raise exceptions.AuthenticationFailed("Unknown or revoked API key.")
    return actor


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        actor = authenticate_key(bearer_key(header))
        return actor, actor

    def authenticate_header(self, request):
        return f'{self.keyword} realm="api"'


class IsApiKeyAuthenticated(permissions.BasePermission):
    def has_permission(self, request, view):
        return isinstance(request.user, Actor)
