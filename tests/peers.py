"""Real peers on 127.0.0.1 for the alerting tests: an HTTP webhook receiver and an SMTP server."""

from __future__ import annotations

import json
import socket
import threading
import time
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class WebhookReceiver:
    """Records every POST body; ``mode`` makes it answer 200, 500, or hang."""

    def __init__(self, port: int = 0) -> None:
        self.requests: list[dict[str, Any]] = []
        self.times: list[float] = []  # when each request arrived (time.time())
        self.mode = "ok"
        self.delay = 0.0  # seconds before answering (a slow endpoint)
        self.hang = threading.Event()
        self.received = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self._record(json.loads(body or b"{}"))

            def do_GET(self) -> None:
                self._record({"path": self.path})

            def _record(self, payload: dict[str, Any]) -> None:
                if receiver.mode == "hang":
                    receiver.hang.wait(30)
                    return
                status = 500 if receiver.mode == "fail" else 200
                receiver.hang.wait(receiver.delay)  # a slow endpoint's own pace
                with receiver.received:
                    if status == 200:
                        receiver.requests.append(payload)
                        receiver.times.append(time.time())
                    receiver.received.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, scheme: str = "json") -> str:
        return f"{scheme}://127.0.0.1:{self.port}/hook"

    def stop(self) -> None:
        self.hang.set()
        self.server.shutdown()
        self.server.server_close()


class SmtpSink:
    """aiosmtpd on an ephemeral port, keeping every message it receives."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                sink.messages.append(message_from_bytes(envelope.content))
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def url(self) -> str:
        return (
            f"mailto://127.0.0.1:{self.port}?from=backup-monitor@example.com"
            "&to=ops@example.com&mode=insecure"
        )

    def stop(self) -> None:
        self.controller.stop()


def mail_text(message: Message) -> str:
    """The text/plain body of a (possibly multipart) email."""
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            return part.get_payload(decode=True).decode()
    raise AssertionError("no text/plain part")
