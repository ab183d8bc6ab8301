"""Property: any sequence of file operations leaves the watched index equal to a fresh scan."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.daemon import Daemon
from exporter.sources.listing import scan_target
from exporter.sources.matcher import Matcher
from tests.conftest import make_config, wait_for

names = st.sampled_from(["a.db", "b.db", "c.db", "sub/d.db", "sub/e.db", "x.db.part"])
operations = st.lists(
    st.one_of(
        st.tuples(st.just("write"), names, st.integers(0, 3000)),
        st.tuples(st.just("append"), names, st.integers(1, 500)),
        st.tuples(st.just("rename"), names, names),
        st.tuples(st.just("delete"), names),
        st.tuples(st.just("touch"), names, st.integers(0, 10**9)),
        st.tuples(st.just("rmtree"), st.just("sub")),
    ),
    min_size=1,
    max_size=25,
)


def apply(root: Path, op: tuple) -> None:
    kind, name = op[0], op[1]
    path = root / name
    try:
        if kind == "write":
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(b"w" * op[2])
        elif kind == "append":
            with open(path, "ab") as handle:
                handle.write(b"a" * op[2])
        elif kind == "rename":
            target = root / op[2]
            target.parent.mkdir(exist_ok=True)
            os.rename(path, target)
        elif kind == "delete":
            path.unlink()
        elif kind == "touch":
            os.utime(path, (op[2], op[2]))
        elif kind == "rmtree":
            shutil.rmtree(path)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        pass


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations)
def test_index_equals_fresh_scan_after_any_operations(ops: list[tuple]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "t"
        root.mkdir()
        config = make_config(targets=[{"name": "t", "path": str(root), "recursive": True}])
        daemon = Daemon(config)
        daemon.start()
        try:
            for op in ops:
                apply(root, op)
            matcher = Matcher(["*"], config.targets[0].exclude)
            wait_for(
                lambda: daemon.targets[0].index.files() == scan_target(str(root), matcher, True)
            )
        finally:
            daemon.stop()
