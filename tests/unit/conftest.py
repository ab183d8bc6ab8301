"""The unit tier: no processes, no network sockets. Anything that tries is in the wrong tier.

(A Unix socket file in a directory under test is only a kind of file, and allowed.)
"""

from __future__ import annotations

import socket
import subprocess
from typing import Any

import pytest

NETWORK = {-1, socket.AF_INET, socket.AF_INET6}  # -1: socket()'s default, AF_INET


@pytest.fixture(autouse=True)
def _no_processes_or_network(monkeypatch: pytest.MonkeyPatch) -> None:
    create = socket.socket.__init__

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("a unit test must not start processes or open network sockets")

    def local_only(self: socket.socket, family: int = -1, *args: Any, **kwargs: Any) -> None:
        if family in NETWORK:
            refuse()
        create(self, family, *args, **kwargs)

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)
    monkeypatch.setattr(socket.socket, "__init__", local_only)
