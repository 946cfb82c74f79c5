"""A real webhook receiver for the tests: an ``http.server`` in a thread that checks every
request's signature the way a receiver is told to in docs/webhooks.md."""

import hashlib
import hmac
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def signature_valid(secret: str, headers, body: bytes) -> bool:
    """Receiver-side check, written from the documentation, not from Tascade's code."""
    timestamp = headers.get("X-Tascade-Timestamp", "")
    expected = hmac.new(
        secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest("sha256=" + expected, headers.get("X-Tascade-Signature", ""))


@dataclass
class Received:
    headers: dict
    body: dict
    verified: bool


@dataclass
class Receiver:
    """``statuses``: answers to give, in order (the last one repeats). ``hang``: never answer
    until released. ``secrets``: each subscription's secret, to verify its signatures."""

    statuses: list[int] = field(default_factory=lambda: [200])
    hang: bool = False
    secrets: dict[int, str] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None
    release: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hook"

    def event_ids(self) -> list[int]:
        return [r.body["id"] for r in self.received]

    def start(self) -> "Receiver":
        receiver = self
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if receiver.hang:
                    receiver.release.wait(30)
                    return
                document = json.loads(body)
                secret = receiver.secrets.get(document["subscription"], "")
                with lock:
                    receiver.received.append(
                        Received(
                            headers=dict(self.headers),
                            body=document,
                            verified=signature_valid(secret, self.headers, body),
                        )
                    )
                    index = min(len(receiver.received), len(receiver.statuses)) - 1
                    status = receiver.statuses[index]
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(f"answer {status}".encode())

            disable_nagle_algorithm = True  # answer at once, not after a delayed ACK

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
