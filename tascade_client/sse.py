"""A reader for ``text/event-stream`` (the WHATWG server-sent-events format)."""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class ServerSentEvent:
    id: str | None
    event: str
    data: str


@dataclass(frozen=True)
class RetryHint:
    """The server's ``retry:`` field: how long to wait before reconnecting."""

    milliseconds: int


def parse(lines: Iterable[str]) -> Iterator[ServerSentEvent | RetryHint]:
    """Frames from the stream's lines (without their line ends). Comments (``: …``) are
    skipped; a frame without ``data`` dispatches nothing, as in a browser."""
    event, data, last_id = "", [], None
    frame_id: str | None = None
    for line in lines:
        if line == "":
            if frame_id is not None:
                last_id = frame_id
            if data:
                yield ServerSentEvent(id=last_id, event=event or "message", data="\n".join(data))
            event, data, frame_id = "", [], None
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
        elif name == "id" and "\0" not in value:
            frame_id = value
        elif name == "retry" and value.isdigit():
            yield RetryHint(int(value))
