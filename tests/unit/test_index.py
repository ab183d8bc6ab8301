"""The index: any sequence of updates leaves it equal to a fresh computation."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from exporter.index import TargetIndex, sort_entries

names = st.sampled_from([f"d{d}/b{i}" for d in range(2) for i in range(4)])
ops = st.lists(
    st.one_of(
        st.tuples(st.just("upsert"), names, st.integers(0, 50), st.integers(0, 5)),
        st.tuples(st.just("remove"), names),
        st.tuples(st.just("remove_prefix"), st.sampled_from(["d0/", "d1/"])),
        st.tuples(st.just("snapshot")),
    ),
    max_size=40,
)


def expected(reference: dict[str, tuple[int, float]]) -> tuple:
    if not reference:
        return (0, 0, None, None)
    newest = max(reference.items(), key=lambda kv: (kv[1][1], kv[0]))
    oldest = min(reference.items(), key=lambda kv: (kv[1][1], kv[0]))
    total = sum(size for size, _ in reference.values())
    return (len(reference), total, (newest[0], *newest[1]), (oldest[0], *oldest[1]))


@given(ops)
def test_any_sequence_matches_reference(sequence: list[tuple]) -> None:
    index = TargetIndex("t", "/t")
    index.apply_scan({}, set(), 0, 0)
    reference: dict[str, tuple[int, float]] = {}
    for op in sequence:
        if op[0] == "upsert":
            index.upsert(op[1], op[2], float(op[3]))
            reference[op[1]] = (op[2], float(op[3]))
        elif op[0] == "remove":
            index.remove(op[1])
            reference.pop(op[1], None)
        elif op[0] == "remove_prefix":
            index.remove_prefix(op[1])
            reference = {k: v for k, v in reference.items() if not k.startswith(op[1])}
        snap = index.snapshot()
        got = (
            snap.count,
            snap.total_size,
            (snap.newest.name, snap.newest.size, snap.newest.mtime) if snap.newest else None,
            (snap.oldest.name, snap.oldest.size, snap.oldest.mtime) if snap.oldest else None,
        )
        assert got == expected(reference)


def test_events_during_a_scan_win_over_the_scan() -> None:
    index = TargetIndex("t", "/t")
    index.apply_scan({"a": (1, 1.0), "b": (1, 1.0)}, set(), 0, 0)
    index.begin_scan()
    index.upsert("c", 5, 5.0)  # created after the scan listed the directory
    index.remove("a")  # deleted after the scan saw it
    corrections = index.apply_scan({"a": (1, 1.0), "b": (2, 2.0)}, set(), 1, 0)
    assert index.files() == {"b": (2, 2.0), "c": (5, 5.0)}
    assert corrections == 1


def test_listeners_hear_changes_only() -> None:
    heard: list[str] = []
    index = TargetIndex("t", "/t")
    index.subscribe(heard.append)
    index.apply_scan({"a": (1, 1.0)}, set(), 0, 0)
    index.upsert("a", 1, 1.0)  # no change
    index.remove("missing")  # no change
    index.upsert("a", 2, 1.0)
    assert heard == ["t", "t"]


def test_down_clears_and_counts() -> None:
    index = TargetIndex("t", "/t")
    index.apply_scan({"a": (1, 1.0)}, set(), 0, 0)
    index.mark_down("permission denied", 5)
    snap = index.snapshot()
    assert (snap.up, snap.error, snap.count, snap.newest, snap.scan_errors, snap.scans) == (
        False,
        "permission denied",
        0,
        None,
        1,
        2,
    )


def test_unchanged_rescan_still_updates_scan_counters() -> None:
    index = TargetIndex("t", "/t")
    index.apply_scan({"a": (1, 1.0)}, set(), 10, 0)
    first = index.snapshot()
    index.apply_scan({"a": (1, 1.0)}, set(), 20, 0)
    second = index.snapshot()
    assert (second.scans, second.last_scan) == (2, 20)
    assert second.version == first.version  # no change to the backups themselves


@given(
    st.lists(st.tuples(st.integers(0, 5).map(float), st.text("ab", max_size=3), st.integers(0, 3)))
)
def test_sort_entries_is_sorted_with_ties(entries: list[tuple[float, str, int]]) -> None:
    """The fast sort equals sorted() even when many timestamps are equal."""
    assert sort_entries(list(entries)) == sorted(entries)
