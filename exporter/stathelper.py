"""The stat helper process, and the stat loop it shares with the daemon.

Run as ``python -I -S stathelper.py FD``: FD is an inherited descriptor of the
directory and stdin carries NUL-separated names relative to it. The helper
stats them from the last one backwards and writes, after each chunk of names,
one block: the lowest position it has now done, the number of records, and
three arrays of native 8-byte values (positions, sizes and mtimes of the
regular files in that chunk). It imports only what an interpreter started with
``-S`` has at hand, so it starts in about 15 ms.
"""

from __future__ import annotations

import os
import sys
from array import array
from stat import S_ISREG

TYPE_CHECKING = False  # importing typing would double the helper's start-up time
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

CHUNK = 1024  # names per block: the finer, the less work the two processes both do at the end
HEADER = array("q", [0, 0]).itemsize * 2


def stat_regular(
    dir_fd: int, names: Sequence[str] | Sequence[bytes]
) -> Iterator[tuple[int, int, float]]:
    """(position, size, mtime) of each name that is a regular file (symlinks followed)."""
    stat = os.stat
    for position, name in enumerate(names):
        try:
            st = stat(name, dir_fd=dir_fd)
        except (OSError, ValueError):
            continue  # vanished or unreadable between listing and stat
        if S_ISREG(st.st_mode):
            yield position, st.st_size, st.st_mtime


def encode_block(low: int, records: list[tuple[int, int, float]]) -> bytes:
    positions, sizes, mtimes = array("q"), array("q"), array("d")
    for position, size, mtime in records:
        positions.append(position)
        sizes.append(size)
        mtimes.append(mtime)
    header = array("q", [low, len(records)])
    return b"".join(column.tobytes() for column in (header, positions, sizes, mtimes))


def decode_blocks(data: bytearray) -> Iterator[tuple[int, Iterator[tuple[int, int, float]]]]:
    """(lowest position done, records) for each whole block, removed from ``data``."""
    while len(data) >= HEADER:
        low, count = array("q", data[:HEADER])
        end = HEADER + count * 24
        if len(data) < end:
            return
        columns = (array("q"), array("q"), array("d"))
        for i, column in enumerate(columns):
            start = HEADER + i * count * 8
            column.frombytes(data[start : start + count * 8])
        del data[:end]
        yield low, zip(*columns, strict=True)


def main() -> None:
    dir_fd = int(sys.argv[1])
    data = sys.stdin.buffer.read()
    names = data.split(b"\0") if data else []
    out = sys.stdout.buffer
    for end in range(len(names), 0, -CHUNK):
        low = max(0, end - CHUNK)
        records = [
            (low + i, size, mtime) for i, size, mtime in stat_regular(dir_fd, names[low:end])
        ]
        out.write(encode_block(low, records))
        out.flush()


if __name__ == "__main__":
    main()
