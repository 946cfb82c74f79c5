"""The project's audit trail as a server-sent-events stream (``text/event-stream``).

Each frame carries one event, exactly as one item of ``GET projects/{id}/events/``::

    id: 42
    event: task.claimed
    data: {"id": 42, "project": 1, "task": 7, "kind": "task.claimed", …}

The stream reads through ``selectors.events_after``: commit order, up to the visibility
horizon, so a stream resumed after a given id never skips an event that committed late.
A client resumes with the ``Last-Event-ID`` header (what ``EventSource`` sends on its own)
or ``?after=``. Comments (``: keep-alive``) keep idle connections open through proxies.

One response lasts at most ``TASCADE_SSE_MAX_SECONDS``, then ends; the client reconnects
with the last id it saw. A stream holds its web worker (a thread, or a task under ASGI) for
that long, so serve it with threaded workers (``gunicorn -k gthread``) or an ASGI server,
never with a handful of sync workers. Under ASGI the stream is an async iterator, so Django
sends it frame by frame instead of buffering it.
"""

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from orchestration import selectors
from orchestration.api import serializers as s
from orchestration.api.views import EventQuerySerializer, _comma_list
from tascade.api import error_responses
from tascade.errors import NotFound

BATCH = 500
# How long a client should wait before reconnecting after the stream ends (ms).
RETRY_MILLISECONDS = 1000


class StreamNegotiation(BaseContentNegotiation):
    """The stream renders itself; what DRF renders here is an error, always as JSON.

    The default negotiation would answer ``Accept: text/event-stream`` with 406.
    """

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return JSONRenderer(), JSONRenderer.media_type


class EventStreamQuerySerializer(EventQuerySerializer):
    limit = None  # the stream reads on in batches until it ends


def frame(event_data: dict) -> str:
    """One SSE frame. ``json.dumps`` escapes newlines, so ``data`` is a single line."""
    return (
        f"id: {event_data['id']}\n"
        f"event: {event_data['kind']}\n"
        f"data: {json.dumps(event_data, separators=(',', ':'))}\n\n"
    )


@dataclass
class _Fetch:
    after: int | None


@dataclass
class _Wait:
    seconds: float


def _pump(
    first_batch: list[dict], after: int | None
) -> Generator[str | _Fetch | _Wait, list[dict], None]:
    """The stream's logic, independent of how it is served.

    Yields frames (text), ``_Fetch`` (send back the next batch) and ``_Wait`` (sleep), so
    the sync and the async driver below share every decision.
    """
    config = settings.TASCADE
    deadline = time.monotonic() + config["SSE_MAX_SECONDS"]
    yield f"retry: {RETRY_MILLISECONDS}\n\n"
    last_write = time.monotonic()
    batch = first_batch
    while True:
        for data in batch:
            yield frame(data)
            after = data["id"]
        now = time.monotonic()
        if batch:
            last_write = now
        if len(batch) < BATCH:  # caught up: wait for more, or end
            if now >= deadline:
                return
            if now - last_write >= config["SSE_KEEPALIVE_SECONDS"]:
                yield ": keep-alive\n\n"
                last_write = now
            yield _Wait(min(config["SSE_POLL_SECONDS"], deadline - now))
        batch = yield _Fetch(after)


def _serve_sync(pump, fetch: Callable[[int | None], list[dict]]) -> Iterator[str]:
    reply = None
    while True:
        try:
            step = pump.send(reply)
        except StopIteration:
            return
        reply = None
        if isinstance(step, _Fetch):
            try:
                reply = fetch(step.after)
            except NotFound:  # the project went away mid-stream: end it, as a bound would
                return
        elif isinstance(step, _Wait):
            time.sleep(step.seconds)
        else:
            yield step


async def _serve_async(pump, fetch: Callable[[int | None], list[dict]]) -> AsyncIterator[str]:
    reply = None
    while True:
        try:
            step = pump.send(reply)
        except StopIteration:
            return
        reply = None
        if isinstance(step, _Fetch):
            try:
                reply = await sync_to_async(fetch)(step.after)
            except NotFound:
                return
        elif isinstance(step, _Wait):
            await asyncio.sleep(step.seconds)
        else:
            yield step


# In OpenAPI 3.0 the schema of an event stream describes one event (a frame's fields).
_SSE_EVENT_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "description": "The event's id: resume after it."},
        "event": {"type": "string", "description": "The event's kind, e.g. task.claimed."},
        "data": {
            "type": "string",
            "description": "The event as JSON, as one item of GET projects/{id}/events/.",
        },
        "retry": {"type": "integer"},
    },
    "required": ["id", "event", "data"],
}


@extend_schema(
    tags=["events"],
    parameters=[
        EventStreamQuerySerializer,
        OpenApiParameter(
            "Last-Event-ID",
            OpenApiTypes.INT,
            OpenApiParameter.HEADER,
            required=False,
            description="Resume after this event id (takes precedence over `after`).",
        ),
    ],
    responses={
        (200, "text/event-stream"): OpenApiResponse(
            _SSE_EVENT_SCHEMA,
            description=(
                "Frames `id: <event id>`, `event: <kind>`, `data: <one event as JSON>`, and "
                "`: keep-alive` comments. The response ends after TASCADE_SSE_MAX_SECONDS; "
                "reconnect with `Last-Event-ID`."
            ),
        ),
        **{(code, "application/json"): r for code, r in error_responses().items()},
    },
)
class EventStream(APIView):
    """The audit trail as server-sent events, live; resumable with ``Last-Event-ID``."""

    content_negotiation_class = StreamNegotiation

    def get(self, request, project_id):
        params = request.query_params.dict()
        if "HTTP_LAST_EVENT_ID" in request.META:
            params["after"] = request.META["HTTP_LAST_EVENT_ID"].strip()
        serializer = EventStreamQuerySerializer(data=params)
        serializer.is_valid(raise_exception=True)
        query = serializer.validated_data
        actor = request.user

        def fetch(after: int | None) -> list[dict]:
            events = selectors.events_after(
                actor,
                project_id,
                after=after,
                task_id=query.get("task"),
                kinds=_comma_list(query.get("kind")),
                limit=BATCH,
            )
            return s.EventSerializer(events, many=True).data

        # The first read happens now, so an unknown project or `after` is a plain 404.
        after = query.get("after")
        pump = _pump(fetch(after), after)
        if isinstance(request._request, ASGIRequest):
            content = _serve_async(pump, fetch)
        else:
            content = _serve_sync(pump, fetch)
        response = StreamingHttpResponse(content, content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # nginx: pass frames through as they come
        return response
