"""The stat helper process, and the stat loop it shares with the daemon.

Run as ``python -I -S stathelper.py FD``: FD is an inherited descriptor of the
directory, and stdin streams NUL-terminated names relative to it while the
daemon is still listing. The helper stats them in the order they come and
writes, after each chunk, one block: how many names from the first one it has
now done, the number of records, and four arrays of native 8-byte values
(positions, sizes, mtimes and links of the regular files in that chunk; see
``stat_regular`` for what a link value means). It imports
only what an interpreter started with ``-S`` has at hand, so it starts in
about 15 ms.
"""

from __future__ import annotations

import errno
import os
import sys
from array import array
from stat import S_ISLNK, S_ISREG

TYPE_CHECKING = False  # importing typing would double the helper's start-up time
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

CHUNK = 1024  # names per block: the finer, the less work both processes do where they meet
HEADER = 16  # two 8-byte values: names done, records in the block
RECORD = 32  # four 8-byte values: position, size, mtime, link
SYMLINK = -1  # the link value of a symbolic link to a regular file
UNREADABLE = -1  # the size of a name that could not be statted (too long, no permission)

Record = tuple[int, int, float, int]


def stat_regular(dir_fd: int, names: Sequence[str] | Sequence[bytes]) -> Iterator[Record]:
    """(position, size, mtime, link) of each name that is a regular file (symlinks followed).

    ``link`` is 0 for a plain file, SYMLINK for a symbolic link, and the inode number
    of a file with more than one hard link: aliases of one backup are found from these.
    A plain file costs one lstat, as a stat would; only a link costs a second call. A
    name that cannot be statted, but for having vanished, gets the size UNREADABLE.
    """
    stat = os.stat
    for position, name in enumerate(names):
        try:
            st = stat(name, dir_fd=dir_fd, follow_symlinks=False)
            link = st.st_ino if st.st_nlink > 1 else 0
            if S_ISLNK(st.st_mode):
                st, link = stat(name, dir_fd=dir_fd), SYMLINK
        except OSError as exc:
            if exc.errno != errno.ENOENT:  # vanished since the listing: not an error
                yield position, UNREADABLE, 0.0, 0
            continue
        except ValueError:
            yield position, UNREADABLE, 0.0, 0
            continue
        if S_ISREG(st.st_mode):
            yield position, st.st_size, st.st_mtime, link


def encode_block(done: int, records: list[Record]) -> bytes:
    columns = (array("q"), array("q"), array("d"), array("q"))
    for record in records:
        for column, value in zip(columns, record, strict=True):
            column.append(value)
    header = array("q", [done, len(records)])
    return b"".join(column.tobytes() for column in (header, *columns))


def decode_blocks(data: bytearray) -> Iterator[tuple[int, Iterator[Record]]]:
    """(names done, records) for each whole block at the start of ``data``, removed from it."""
    while len(data) >= HEADER:
        done, count = array("q", data[:HEADER])
        end = HEADER + count * RECORD
        if len(data) < end:
            return
        columns = (array("q"), array("q"), array("d"), array("q"))
        for i, column in enumerate(columns):
            start = HEADER + i * count * 8
            column.frombytes(data[start : start + count * 8])
        del data[:end]
        yield done, zip(*columns, strict=True)


def main() -> None:
    dir_fd = int(sys.argv[1])
    names: list[bytes] = []
    partial = b""
    done = 0
    while True:
        if done == len(names):  # nothing left to do: wait for more names, or the end
            data = os.read(0, 1 << 20)
            if not data:
                return
            *complete, partial = (partial + data).split(b"\0")
            names += complete
            continue
        end = min(done + CHUNK, len(names))
        records = [
            (done + i, size, mtime, link)
            for i, size, mtime, link in stat_regular(dir_fd, names[done:end])
        ]
        sys.stdout.buffer.write(encode_block(end, records))
        sys.stdout.buffer.flush()
        done = end


if __name__ == "__main__":
    main()
