"""The disk spool: segments, bounds, replay order, crash leftovers, slots shared by processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kept.spool import Spool, make_spool, read_segment, spool_dir_for


def events(*names: str) -> list[bytes]:
    return [f'{{"n":"{n}"}}'.encode() for n in names]


def drain(spool: Spool) -> list[bytes]:
    """Every event in the spool, oldest first, removing segments as a replay does."""
    out: list[bytes] = []
    while (segment := spool.oldest()) is not None:
        out.extend(segment.events)
        spool.remove(segment)
    return out


def test_round_trip_oldest_first_across_segments(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s", segment_bytes=30)
    assert not spool.pending
    for i in range(10):
        assert spool.append(events(f"a{i}", f"b{i}")) == 2
    slot = spool.slot
    assert slot is not None
    assert len(list(slot.glob("*.seg"))) > 3  # rolled over into several segments
    assert spool.pending
    assert drain(spool) == [e for i in range(10) for e in events(f"a{i}", f"b{i}")]
    assert not spool.pending and spool.bytes == 0
    assert list(slot.glob("*.seg")) == []


def test_appends_after_a_replay_started_go_to_a_new_segment(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s")
    spool.append(events("a", "b"))
    first = spool.oldest()  # seals the segment being written
    assert first is not None and first.events == events("a", "b")
    spool.append(events("c"))
    spool.remove(first)
    assert drain(spool) == events("c")


def test_bound_keeps_a_prefix_and_frees_space_on_remove(tmp_path: Path) -> None:
    one = len(events("x")[0]) + 1
    spool = Spool(tmp_path / "s", max_bytes=3 * one)
    assert spool.append(events("1", "2")) == 2
    assert spool.append(events("3", "4", "5")) == 1  # only what fits, oldest first
    assert spool.append(events("6")) == 0
    assert spool.bytes == 3 * one
    assert drain(spool) == events("1", "2", "3")
    assert spool.append(events("7")) == 1


def test_events_survive_a_restart_and_a_torn_last_record_is_skipped(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s")
    spool.append(events("a", "b"))
    slot = spool.slot
    assert slot is not None
    spool.close()
    (segment,) = slot.glob("*.seg")
    with open(segment, "ab") as f:  # a crash in the middle of writing a record
        f.write(b'{"n":"tor')
    assert read_segment(segment) == events("a", "b")

    again = Spool(tmp_path / "s")
    assert again.open() and again.slot == slot
    assert again.pending
    assert drain(again) == events("a", "b")


def test_two_spools_on_one_directory_take_separate_slots(tmp_path: Path) -> None:
    first, second = Spool(tmp_path / "s"), Spool(tmp_path / "s")
    first.append(events("a"))
    second.append(events("b"))
    assert first.slot != second.slot
    assert drain(first) == events("a")
    assert drain(second) == events("b")


def test_orphaned_slots_are_adopted_in_order(tmp_path: Path) -> None:
    holders = [Spool(tmp_path / "s") for _ in range(3)]
    for i, spool in enumerate(holders):
        spool.append(events(f"from-{i}"))
    holders[1].close()
    holders[2].close()
    # Slot 1 is free again: the next spool takes it and adopts slot 2's orphans;
    # slot 0 is still held by a live spool, which keeps replaying its own.
    successor = Spool(tmp_path / "s")
    assert successor.open() and successor.slot == holders[0].directory / "1"
    assert drain(successor) == events("from-1", "from-2")
    assert drain(holders[0]) == events("from-0")


def test_another_process_holding_the_spool_is_not_disturbed(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from kept.spool import Spool
        spool = Spool(Path({str(tmp_path / "s")!r}))
        spool.append([b'{{"n":"child"}}'])
        print(spool.slot.name, flush=True)
        sys.stdin.read()  # hold the slot until the parent closes our stdin
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "0"
        parent = Spool(tmp_path / "s")
        parent.append(events("parent"))
        assert parent.slot == tmp_path / "s" / "1"
        assert drain(parent) == events("parent")  # the live child's events stay its own
        assert read_segment(next((tmp_path / "s" / "0").glob("*.seg"))) == [b'{"n":"child"}']
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(30)
    later = Spool(tmp_path / "s")  # the child is gone: its slot is free again
    assert drain(later) == [b'{"n":"child"}']


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_takes_its_own_slot(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s")
    spool.append(events("parent"))
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: must not run anything of pytest's
        code = 1
        try:
            spool.reset()
            spool.append(events("child"))
            os.write(write, str(spool.slot).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    child_slot = os.read(read, 4096).decode()
    os.close(read)
    assert os.waitpid(pid, 0)[1] == 0
    assert child_slot == str(tmp_path / "s" / "1")
    spool.append(events("parent-2"))  # the parent still holds slot 0 after the child exits
    assert drain(spool) == events("parent", "parent-2")


def test_make_spool_per_sink_and_switches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = make_spool(tmp_path, 10, "http://a", "key", None)
    b = make_spool(tmp_path, 10, "http://b", "key", None)
    assert a is not None and b is not None
    assert a.directory != b.directory  # one sink's events never replay into another
    assert a.directory == spool_dir_for(tmp_path, "http://a", "key", None)
    assert make_spool(False, 10, "x") is None
    monkeypatch.setenv("KEPT_SPOOL_DIR", str(tmp_path / "env"))
    from_env = make_spool(None, 10, "x")
    assert from_env is not None and from_env.directory.parent == tmp_path / "env"
    monkeypatch.setenv("KEPT_SPOOL_DIR", "off")
    assert make_spool(None, 10, "x") is None
    assert not any(tmp_path.iterdir())  # nothing touches the disk before it is needed
