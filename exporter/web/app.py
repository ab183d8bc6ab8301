"""The HTTP side: a WSGI app (metrics, landing page, health) and its threaded server."""

from __future__ import annotations

import json
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

from exporter import __version__
from exporter.sources.pings import PREFIX as PING_PREFIX
from exporter.web.page import render_page
from exporter.web.status import build_alerts

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
HealthCheck = Callable[[], tuple[bool, str]]
StatusSource = Callable[[], dict[str, Any]]


def make_app(
    registry: CollectorRegistry,
    metrics_path: str,
    health: HealthCheck,
    status: StatusSource,
    refresh_seconds: float = 10.0,
    pings: WSGIApp | None = None,
) -> WSGIApp:
    """``pings``: the app for /ping/... (job results), where jobs are tracked."""
    metrics_app = make_wsgi_app(registry)
    page = render_page(__version__, metrics_path, refresh_seconds)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if pings is not None and environ.get("PATH_INFO", "").startswith(PING_PREFIX):
            return pings(environ, start_response)  # a ping records a run: never a HEAD
        if environ.get("REQUEST_METHOD") == "HEAD":
            return _head(routes, environ, start_response)
        return routes(environ, start_response)

    def routes(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == metrics_path:
            return metrics_app(environ, start_response)
        if path == "/":
            return _respond(start_response, "200 OK", "text/html; charset=utf-8", page)
        if path in ("/api/v1/targets", "/api/v1/alerts"):
            document = status()
            if path.endswith("alerts"):
                document = build_alerts(document)
            body = json.dumps(document, indent=1).encode()
            return _respond(start_response, "200 OK", "application/json", body)
        if path == "/healthz":
            ok, message = health()
            status_line = "200 OK" if ok else "503 Service Unavailable"
            return _respond(
                start_response, status_line, "text/plain; charset=utf-8", message.encode()
            )
        return _respond(start_response, "404 Not Found", "text/plain", b"not found\n")

    return app


def _head(app: WSGIApp, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
    """Every GET route answers HEAD: the same status and headers (length included), no body."""
    answer: list[Any] = []

    def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        answer[:] = [status, headers]

    result = app({**environ, "REQUEST_METHOD": "GET"}, capture)
    try:
        length = sum(len(chunk) for chunk in result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    status, headers = answer
    if not any(name.lower() == "content-length" for name, _ in headers):
        headers = [*headers, ("Content-Length", str(length))]
    start_response(status, headers)
    return []


def _respond(start_response: StartResponse, status: str, ctype: str, body: bytes) -> list[bytes]:
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default listen backlog is 5: 50 clients at once overflowed it.
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Failed TLS handshakes, plain HTTP on a TLS port, resets: the client's problem.
        log.debug("connection from %s failed", client_address, exc_info=True)


class _ThreadingServer6(_ThreadingServer):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    # A client that connects and sends nothing must not hold a thread for ever.
    timeout = 30

    def setup(self) -> None:
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            # In this connection's own thread, so a slow handshake blocks no one else.
            self.connection.do_handshake()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # The path without its query: a ping's ?token= never reaches the log.
        path = self.path.partition("?")[0]
        log.debug('%s - "%s %s" %s', self.address_string(), self.command, path, code)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        log.debug("%s - %s", self.address_string(), format % args)


class HttpServer:
    """Serves a WSGI app on a background thread; ``port`` is the bound one (for port 0)."""

    def __init__(
        self, app: WSGIApp, host: str, port: int, tls: ssl.SSLContext | None = None
    ) -> None:
        server_class = _ThreadingServer6 if ":" in host else _ThreadingServer
        self._server = make_server(
            host or "0.0.0.0",  # noqa: S104 - all interfaces is the documented default
            port,
            app,
            server_class=server_class,
            handler_class=_QuietHandler,
        )
        if tls is not None:
            self._server.socket = tls.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
        self.scheme = "https" if tls else "http"
        self.host = host
        self.port = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="http", kwargs={"poll_interval": 0.2}
        )
        self._thread.daemon = True

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=2)
