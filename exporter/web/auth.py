"""TLS and basic authentication for the HTTP endpoint, from an exporter-toolkit web config.

The same file Prometheus' own exporters take with ``--web.config.file`` (and that
``promtool check web-config`` accepts):

    tls_server_config:
      cert_file: /etc/backup-monitor/tls.crt
      key_file: /etc/backup-monitor/tls.key
    basic_auth_users:
      prometheus: $2y$10$...   # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':\\n')
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import ssl
import threading
from collections.abc import Iterable
from typing import Any, Literal

import bcrypt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from exporter.config import ConfigError, format_validation_error, parse_yaml, read_text
from exporter.web.app import StartResponse, WSGIApp

BCRYPT_MAX = 72  # bytes of a password bcrypt looks at
# Endpoints a container or load balancer probes without credentials; they reveal nothing.
OPEN_PATHS = frozenset({"/healthz"})


class TlsServerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    cert_file: str
    key_file: str
    client_auth_type: Literal[
        "NoClientCert", "RequestClientCert", "RequireAnyClientCert",
        "VerifyClientCertIfGiven", "RequireAndVerifyClientCert",
    ] = "NoClientCert"  # fmt: skip
    client_ca_file: str | None = None
    min_version: Literal["TLS12", "TLS13"] = "TLS12"


class WebConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tls_server_config: TlsServerConfig | None = None
    basic_auth_users: dict[str, str] = Field(default_factory=dict)


def load_web_config(path: str) -> WebConfig:
    data = parse_yaml(read_text(path, "web config"), f"web config {path}") or {}
    try:
        config = WebConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"web config {path}: {format_validation_error(exc)}") from None
    for user, hashed in config.basic_auth_users.items():
        if not hashed.startswith(("$2a$", "$2b$", "$2y$")):
            raise ConfigError(f"web config {path}: basic_auth_users.{user}: not a bcrypt hash")
    if config.tls_server_config:
        ssl_context(config.tls_server_config)  # fails now, with the reason, if unusable
    return config


def ssl_context(tls: TlsServerConfig) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = (
        ssl.TLSVersion.TLSv1_3 if tls.min_version == "TLS13" else ssl.TLSVersion.TLSv1_2
    )
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
        if tls.client_ca_file:
            context.load_verify_locations(tls.client_ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"tls_server_config: cannot load certificate or key: {exc}") from None
    if tls.client_auth_type in ("RequireAndVerifyClientCert", "RequireAnyClientCert"):
        context.verify_mode = ssl.CERT_REQUIRED
    elif tls.client_auth_type != "NoClientCert":
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


class BasicAuth:
    """WSGI middleware: 401 unless the request carries a user and password that match."""

    def __init__(self, app: WSGIApp, users: dict[str, str]) -> None:
        self.app = app
        self.users = {u: h.encode() for u, h in users.items()}
        # An unknown user is checked against this, at the configured cost, so that the
        # time of a 401 does not tell which user names exist.
        cost = max(int(h.split(b"$")[2]) for h in self.users.values()) if self.users else 10
        self._dummy = bcrypt.hashpw(b"not a password", bcrypt.gensalt(rounds=cost))
        # bcrypt is slow on purpose; remember passwords already checked (keyed by a salted
        # digest, never the password itself), as Prometheus' exporter-toolkit does.
        self._salt = os.urandom(16)
        self._verified: set[bytes] = set()
        self._lock = threading.Lock()

    def _check(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        hashed = self.users.get(user)
        secret = password.encode()
        if not sep or hashed is None or len(secret) > BCRYPT_MAX:
            # The same work as for a known user, then no: bcrypt reads 72 bytes at most
            # (and bcrypt 5 refuses more), so a longer password is never a match.
            bcrypt.checkpw(secret[:BCRYPT_MAX], self._dummy)
            return False
        key = hmac.new(self._salt, f"{user}\0{password}".encode(), hashlib.sha256).digest()
        with self._lock:
            if key in self._verified:
                return True
        if not bcrypt.checkpw(secret, hashed):
            return False
        with self._lock:
            self._verified.add(key)
        return True

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") in OPEN_PATHS or self._check(
            environ.get("HTTP_AUTHORIZATION", "")
        ):
            return self.app(environ, start_response)
        body = b"401 Unauthorized\n"
        start_response(
            "401 Unauthorized",
            [
                ("Content-Type", "text/plain"),
                ("Content-Length", str(len(body))),
                ("WWW-Authenticate", 'Basic realm="backup-monitor"'),
            ],
        )
        return [body]
