"""The server-sent-events stream of a project's audit trail, and following it with the client."""

import json
import threading
import time

import httpx
import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient
from rest_framework.test import APIClient

from governance.actors import Role
from governance.services.api_keys import api_key_create
from orchestration.selectors import events_after
from orchestration.services import plan
from tascade_client import TascadeClient, TascadeConnectionError, TascadeError
from tascade_client.sse import RetryHint, ServerSentEvent, parse
from tests.client.conftest import wait_for_visible_events
from tests.conftest import ADMIN, PLANNER


def _stream_settings(settings, **values):
    settings.TASCADE = {
        **settings.TASCADE,
        "SSE_MAX_SECONDS": 0,
        "SSE_POLL_SECONDS": 0.05,
        "SSE_KEEPALIVE_SECONDS": 15,
        **values,
    }


def _frames(response) -> list[ServerSentEvent]:
    text = b"".join(response.streaming_content).decode()
    return [f for f in parse(text.split("\n")) if isinstance(f, ServerSentEvent)]


def _url(project) -> str:
    return f"/api/v1/projects/{project.pk}/events/stream/"


# --- the stream itself (Django's test client, one transaction) -------------------------------
@pytest.mark.django_db
class TestTheStream:
    @pytest.fixture(autouse=True)
    def _short(self, settings):
        _stream_settings(settings)

    def test_each_frame_is_one_item_of_the_event_list(self, api, project, make_task):
        make_task("a")
        make_task("b")
        client = api(Role.AGENT)
        response = client.get(_url(project), HTTP_ACCEPT="text/event-stream")
        assert response.status_code == 200
        assert response["Content-Type"] == "text/event-stream"
        assert response["Cache-Control"] == "no-cache"
        frames = _frames(response)
        listed = client.get(f"/api/v1/projects/{project.pk}/events/").json()["results"]
        assert [json.loads(f.data) for f in frames] == listed
        assert [f.id for f in frames] == [str(e["id"]) for e in listed]
        assert [f.event for f in frames] == ["project.created", "task.created", "task.created"]

    def test_last_event_id_resumes_after_it_and_wins_over_after(self, api, project, make_task):
        for title in "abc":
            make_task(title)
        ids = [e.pk for e in events_after(ADMIN, project.pk)]
        client = api(Role.AGENT)
        resumed = client.get(_url(project), HTTP_LAST_EVENT_ID=str(ids[1]))
        assert [int(f.id) for f in _frames(resumed)] == ids[2:]
        both = client.get(f"{_url(project)}?after={ids[0]}", HTTP_LAST_EVENT_ID=str(ids[2]))
        assert [int(f.id) for f in _frames(both)] == ids[3:]
        by_query = client.get(f"{_url(project)}?after={ids[0]}")
        assert [int(f.id) for f in _frames(by_query)] == ids[1:]

    def test_kind_and_task_filter_the_stream_like_the_list(self, api, project, make_task):
        first, _second = make_task("a"), make_task("b")
        client = api(Role.AGENT)
        kinds = _frames(client.get(f"{_url(project)}?kind=project.created"))
        assert [f.event for f in kinds] == ["project.created"]
        of_task = _frames(client.get(f"{_url(project)}?task={first.pk}"))
        assert [json.loads(f.data)["task"] for f in of_task] == [first.pk]

    def test_refusals_are_json_in_the_one_error_shape(self, api, project):
        other = plan.project_create(actor=PLANNER, name="Other", slug="other")
        scoped = api(Role.AGENT, project=other)
        hidden = scoped.get(_url(project), HTTP_ACCEPT="text/event-stream")
        assert hidden.status_code == 404
        assert hidden["Content-Type"] == "application/json"
        assert hidden.json()["error"]["code"] == "NOT_FOUND"
        client = api(Role.AGENT)
        bad = client.get(_url(project), HTTP_LAST_EVENT_ID="seven")
        assert bad.status_code == 400
        assert bad.json()["error"]["details"]["fields"]["after"]
        unknown = client.get(_url(project), HTTP_LAST_EVENT_ID=str(10**12))
        assert unknown.status_code == 404
        anonymous = APIClient().get(_url(project))
        assert anonymous.status_code == 401
        assert anonymous.json()["error"]["code"] == "UNAUTHENTICATED"

    def test_an_idle_stream_sends_keep_alives_and_ends_in_time(self, api, project, settings):
        _stream_settings(settings, SSE_MAX_SECONDS=0.6, SSE_KEEPALIVE_SECONDS=0.1)
        started = time.monotonic()
        response = api(Role.AGENT).get(_url(project))
        text = b"".join(response.streaming_content).decode()
        elapsed = time.monotonic() - started
        assert 0.6 <= elapsed < 5
        assert text.startswith("retry: ")
        assert text.count(": keep-alive\n\n") >= 2

    def test_under_asgi_the_stream_is_sent_frame_by_frame(self, project, make_task):
        """Guards against a sync iterator under ASGI, which Django buffers whole."""
        make_task("a")
        raw = api_key_create(actor=ADMIN, key_actor="agent-1", roles=[Role.AGENT]).raw_key

        async def read():
            response = await AsyncClient().get(
                _url(project), headers={"Authorization": f"Bearer {raw}"}
            )
            assert response.is_async
            return b"".join([chunk async for chunk in response.streaming_content])

        frames = list(parse(async_to_sync(read)().decode().split("\n")))
        assert frames[0] == RetryHint(1000)
        assert [f.event for f in frames[1:]] == ["project.created", "task.created"]


# --- following it (the client against a live server) -------------------------------------------
class RecordingTransport(httpx.HTTPTransport):
    """Records the stream requests; can drop one stream once ``drop_after`` event frames
    have passed on it, like a connection reset."""

    def __init__(self, drop_after: int | None = None) -> None:
        super().__init__()
        self.drop_after = drop_after
        self.stream_requests: list[httpx.Request] = []
        self.dropped_after_id: str | None = None  # the last event id sent before the drop
        self.requests_before_drop: int | None = None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.url.path.endswith("/events/stream/"):
            self.stream_requests.append(request)
            if self.drop_after is not None and self.dropped_after_id is None:
                response.stream = _Dropping(response.stream, self)
        return response


class _Dropping(httpx.SyncByteStream):
    def __init__(self, inner, transport: RecordingTransport) -> None:
        self.inner, self.transport = inner, transport

    def __iter__(self):
        buffer, sent = b"", 0
        for chunk in self.inner:
            buffer += chunk
            while b"\n\n" in buffer:
                frame, buffer = buffer.split(b"\n\n", 1)
                yield frame + b"\n\n"
                if b"\ndata: " in frame:
                    sent += 1
                    if sent == self.transport.drop_after:
                        self.transport.dropped_after_id = frame.split(b"\n")[0][4:].decode()
                        self.transport.requests_before_drop = len(self.transport.stream_requests)
                        raise httpx.ReadError("connection reset by peer")

    def close(self) -> None:
        self.inner.close()


def _take(events, count: int, timeout: float = 120.0) -> list:
    """The next ``count`` items of a (blocking) generator, or a failure after ``timeout``."""
    taken: list = []
    failure: list[BaseException] = []

    def run():
        try:
            for _ in range(count):
                taken.append(next(events))
        except BaseException as exc:  # reported in the test's thread
            failure.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout)
    if failure:
        raise failure[0]
    assert not worker.is_alive(), f"got {len(taken)} of {count} events in {timeout}s"
    return taken


def _commit_order(project_id: int) -> list[int]:
    wait_for_visible_events(project_id)
    return [e.pk for e in events_after(ADMIN, project_id, limit=1000)]


def _task(project, title):
    return plan.task_create(actor=PLANNER, project_id=project.pk, title=title)


def test_follow_resumes_after_the_server_ends_the_stream(server, key, live_project, settings):
    """Guards against a gap or a repeat when the bounded stream ends and the client resumes."""
    _stream_settings(settings, SSE_MAX_SECONDS=1, SSE_KEEPALIVE_SECONDS=0.3)
    for n in range(3):
        _task(live_project, f"before {n}")
    transport = RecordingTransport()
    client = TascadeClient(server, key(Role.AGENT), transport=transport)
    events = client.follow_events(live_project.pk)
    first = _take(events, 4)
    time.sleep(1.5)  # the server has ended that response; the client is not connected
    for n in range(5):
        _task(live_project, f"while away {n}")
    expected = _commit_order(live_project.pk)
    rest = _take(events, len(expected) - 4)
    seen = [e.id for e in first + rest]
    assert seen == expected
    assert len(set(seen)) == len(seen)
    # The connection that delivered the fourth event ended during the sleep (the stream's
    # bound is 1 s); the client resumed from that event. (A connection may also end before
    # delivering anything while other transactions hold the events back: it resumes from
    # where it was, or from the start.)
    resumed_from = [r.headers.get("Last-Event-ID") for r in transport.stream_requests]
    assert resumed_from[0] is None
    assert str(first[-1].id) in resumed_from
    events.close()
    client.close()


def test_follow_survives_a_dropped_connection(server, key, live_project, settings):
    """Guards against losing the events written while the connection was down."""
    _stream_settings(settings, SSE_MAX_SECONDS=30)
    for n in range(3):
        _task(live_project, f"before {n}")
    transport = RecordingTransport(drop_after=2)
    client = TascadeClient(server, key(Role.AGENT), transport=transport)
    events = client.follow_events(live_project.pk)
    first = _take(events, 2)  # the connection fails on the next read
    for n in range(4):
        _task(live_project, f"while dropped {n}")
    expected = _commit_order(live_project.pk)
    rest = _take(events, len(expected) - 2)
    assert [e.id for e in first + rest] == expected
    assert [e.kind for e in first + rest].count("task.created") == 7
    assert transport.dropped_after_id is not None
    reconnect = transport.stream_requests[transport.requests_before_drop]
    assert reconnect.headers["Last-Event-ID"] == transport.dropped_after_id
    events.close()
    client.close()


def test_follow_filters_by_kind_and_starts_after_an_id(server, key, live_project, settings):
    _stream_settings(settings, SSE_MAX_SECONDS=30)
    tasks = [_task(live_project, f"t{n}") for n in range(3)]
    expected = _commit_order(live_project.pk)
    client = TascadeClient(server, key(Role.AGENT))
    events = client.follow_events(live_project.pk, after=expected[1], kinds=["task.created"])
    assert [e.task for e in _take(events, 2)] == [tasks[1].pk, tasks[2].pk]
    events.close()
    client.close()


def test_follow_raises_an_error_answer_at_once(server, key, live_project):
    other = plan.project_create(actor=PLANNER, name="Other", slug="other")
    client = TascadeClient(server, key(Role.AGENT, project=other))
    with pytest.raises(TascadeError) as hidden:
        next(client.follow_events(live_project.pk))
    assert (hidden.value.status, hidden.value.code) == (404, "NOT_FOUND")
    client.close()


def test_follow_never_yields_an_event_twice_even_if_the_server_repeats_it():
    """Guards against a repeated frame across a reconnection reaching the caller twice."""
    bodies = [
        b"retry: 5\n\nid: 1\nevent: a\ndata: " + _event(1) + b"\n\n"
        b"id: 2\nevent: a\ndata: " + _event(2) + b"\n\n",
        b"retry: 5\n\n: keep-alive\n\nid: 2\nevent: a\ndata: " + _event(2) + b"\n\n"
        b"id: 3\nevent: a\ndata: " + _event(3) + b"\n\n",
    ]
    requests = []

    def answer(request):
        requests.append(request)
        return httpx.Response(200, content=bodies[min(len(requests), 2) - 1])

    client = TascadeClient("http://tascade.test", "tsk_x", transport=httpx.MockTransport(answer))
    events = client.follow_events(1)
    assert [e.id for e in _take(events, 3, timeout=10)] == [1, 2, 3]
    assert requests[1].headers["Last-Event-ID"] == "2"
    events.close()


def _event(n: int) -> bytes:
    return json.dumps(
        {
            "id": n,
            "project": 1,
            "task": None,
            "kind": "a",
            "actor": "x",
            "payload": {},
            "created_at": "",
        }
    ).encode()


def test_follow_retries_a_server_error_and_gives_up_after_max_failures():
    calls = []

    def answer(request):
        calls.append(request)
        if len(calls) == 1:
            return httpx.Response(503, text="upstream restarting")
        return httpx.Response(
            200, content=b"retry: 5\n\nid: 1\nevent: a\ndata: " + _event(1) + b"\n\n"
        )

    client = TascadeClient("http://tascade.test", "tsk_x", transport=httpx.MockTransport(answer))
    assert [e.id for e in _take(client.follow_events(1), 1, timeout=10)] == [1]

    down = TascadeClient(
        "http://tascade.test",
        "tsk_x",
        transport=httpx.MockTransport(lambda request: httpx.Response(502)),
    )
    with pytest.raises(TascadeConnectionError) as failed:
        next(down.follow_events(1, max_failures=2))
    assert failed.value.code == "CONNECTION_FAILED" and "HTTP_502" in failed.value.message
