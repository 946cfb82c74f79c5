"""Celery tasks of orchestration. Thin: each calls one service."""

from celery import shared_task

from orchestration.services.sweep import holds_expire_due


@shared_task(name="orchestration.sweep_expired_holds")
def sweep_expired_holds(limit: int = 1000) -> int:
    """Return lapsed leases and reservations to the pool; answers how many expired."""
    return holds_expire_due(limit=limit)
