"""The permission policy of a target: the most a backup file or directory may allow
(``file_mode``, ``dir_mode``, as chmod writes them) and who must own them.

A sweep after every full scan checks the root, every backup and, with ``recursive``,
the directories holding them; a file event (a ``chmod`` is an inotify attribute event)
checks that one file again, so a finding comes and goes within the detection latency.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass

from exporter.config import TargetConfig


@dataclass(frozen=True, slots=True)
class Policy:
    file_mode: int | None
    dir_mode: int | None
    owner: int | None
    group: int | None


def policy_of(config: TargetConfig) -> Policy | None:
    """The target's policy, or None when it sets none (nothing is checked then)."""
    policy = Policy(config.file_mode, config.dir_mode, config.owner, config.group)
    if policy == Policy(None, None, None, None) or config.remote:
        return None
    return policy


def finding(st: os.stat_result, policy: Policy) -> str | None:
    """What is wrong with one file or directory, in a few words, or None."""
    is_dir = stat.S_ISDIR(st.st_mode)
    allowed = policy.dir_mode if is_dir else policy.file_mode
    problems = []
    mode = stat.S_IMODE(st.st_mode)
    if allowed is not None and mode & ~allowed:
        problems.append(f"mode {mode:04o} (max {allowed:04o})")
    if policy.owner is not None and st.st_uid != policy.owner:
        problems.append(f"owner {st.st_uid} (want {policy.owner})")
    if policy.group is not None and st.st_gid != policy.group:
        problems.append(f"group {st.st_gid} (want {policy.group})")
    return ", ".join(problems) or None


def check_path(root: str, rel: str, policy: Policy) -> dict[str, str]:
    """{rel: finding} for one path ("." is the root), or {} when it is fine or gone."""
    try:
        st = os.stat(os.path.join(root, rel))
    except (OSError, ValueError):
        return {}
    found = finding(st, policy)
    return {rel: found} if found else {}


def sweep(root: str, names: Iterable[str], policy: Policy) -> dict[str, str]:
    """The root, every backup named, and the directories between them and the root."""
    found = check_path(root, ".", policy)
    directories: set[str] = set()
    for name in names:
        found.update(check_path(root, name, policy))
        parent = os.path.dirname(name)
        while parent and parent not in directories:
            directories.add(parent)
            parent = os.path.dirname(parent)
    for directory in directories:
        found.update(check_path(root, directory, policy))
    return found
