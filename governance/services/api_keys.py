"""API keys: creation (the raw key is returned once) and revocation."""

import hashlib
import secrets
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from governance import key_cache
from governance.actors import Actor, Role
from governance.errors import ApiKeyRevoked
from governance.models import ApiKey
from tascade.errors import InvalidInput
from tascade.transactions import retry_on_conflict

KEY_PREFIX = "tsk_"


def hash_key(raw_key: str) -> str:
    # Keys carry 256 bits of randomness, so a plain digest is safe and lookups stay O(1).
    return hashlib.sha256(raw_key.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedKey:
    api_key: ApiKey
    raw_key: str


def _validated_roles(roles: list[str]) -> list[str]:
    unknown = sorted(set(roles) - set(Role.values))
    if not roles or unknown:
        raise InvalidInput(
            "roles must name at least one of: " + ", ".join(Role.values) + ".",
            fields={"roles": [f"Unknown role: {r}" for r in unknown] or ["At least one role."]},
        )
    return sorted(set(roles))


def api_key_create(
    *,
    actor: Actor,
    key_actor: str,
    roles: list[str],
    project=None,
    label: str = "",
) -> IssuedKey:
    actor.require(Role.ADMIN)
    key_actor = key_actor.strip()
    if not key_actor:
        raise InvalidInput("actor must not be blank.", fields={"actor": ["Must not be blank."]})
    raw_key = KEY_PREFIX + secrets.token_urlsafe(32)
    api_key = ApiKey.objects.create(
        actor=key_actor,
        roles=_validated_roles(roles),
        project=project,
        label=label,
        prefix=raw_key[:12],
        key_hash=hash_key(raw_key),
        created_by=actor.name,
    )
    return IssuedKey(api_key=api_key, raw_key=raw_key)


@retry_on_conflict
def api_key_revoke(*, actor: Actor, api_key: ApiKey) -> ApiKey:
    actor.require(Role.ADMIN)
    with transaction.atomic():
        locked = ApiKey.objects.select_for_update().get(pk=api_key.pk)
        if locked.revoked_at is not None:
            raise ApiKeyRevoked(api_key_id=locked.pk)
        locked.revoked_at = timezone.now()
        locked.save(update_fields=["revoked_at"])
        transaction.on_commit(lambda: key_cache.forget(locked.key_hash))
    return locked
