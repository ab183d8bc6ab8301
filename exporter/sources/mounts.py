"""Which filesystem a target lives on, and whether inotify sees every writer there.

inotify reports what happens through this kernel's VFS. On a network or FUSE
filesystem another client (the backup host writing to a NAS, a process writing
beneath a FUSE mount) changes files without any event here, so such targets are
polled. The type comes from /proc/self/mountinfo: the mount whose mount point is
the longest prefix of the target's real path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

MOUNTINFO = "/proc/self/mountinfo"

# Filesystems where inotify misses writes made by other clients or beneath the mount.
REMOTE_TYPES = frozenset(
    {
        "nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "9p", "virtiofs", "ceph",
        "glusterfs", "afs", "coda", "lustre", "gpfs", "beegfs", "ocfs2", "gfs2",
        "fuse", "davfs", "vboxsf", "vmhgfs",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Mount:
    point: str
    fstype: str
    source: str


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    return field.encode().decode("unicode_escape") if "\\" in field else field


def parse_mountinfo(text: str) -> list[Mount]:
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 2:
            continue
        mounts.append(Mount(_unescape(fields[4]), tail[0], _unescape(tail[1])))
    return mounts


def mount_of(path: str, mountinfo: str = MOUNTINFO) -> Mount | None:
    """The mount a real path lives on (the last one mounted there wins), or None."""
    try:
        with open(mountinfo, encoding="utf-8", errors="surrogateescape") as handle:
            mounts = parse_mountinfo(handle.read())
    except OSError:
        return None
    best: Mount | None = None
    for mount in mounts:
        point = mount.point.rstrip("/") or "/"
        inside = path == point or path.startswith(point + "/") or point == "/"
        if inside and (best is None or len(point) >= len(best.point.rstrip("/") or "/")):
            best = mount
    return best


def needs_polling(fstype: str) -> bool:
    """Whether inotify can miss other writers on this filesystem type."""
    return fstype in REMOTE_TYPES or fstype.startswith("fuse.")


def choose_mode(requested: str, root: str) -> tuple[str, str]:
    """(inotify or polling, why) for a target whose real path is ``root``."""
    if requested != "auto":
        return requested, f"watch_mode is {requested}"
    mount = mount_of(os.path.realpath(root))
    if mount is None:
        return "inotify", "filesystem type unknown"
    if needs_polling(mount.fstype):
        return "polling", f"{mount.fstype} at {mount.point}: inotify misses other writers there"
    return "inotify", f"{mount.fstype} at {mount.point}"
