"""The device outbox: seq survives restarts, only committed messages exist, bounded size."""

from __future__ import annotations

from device_sim.mqtt.spool import Spool, SpoolDB
from ops.subscriber import SeqTracker


def _append(spool: Spool, task: str = "kws") -> int:
    seq = spool.peek_seq(task)
    spool.append(f"t/{seq}", b"%d" % seq, 1, seq_task=task, seq=seq)
    return seq


def test_seq_continues_after_reopening_and_is_per_task(tmp_path):
    db = SpoolDB(tmp_path / "s.sqlite")
    spool = Spool(db, "dev")
    assert [_append(spool) for _ in range(3)] == [0, 1, 2]
    assert _append(spool, "vibration") == 0
    db.close()
    reopened = Spool(SpoolDB(tmp_path / "s.sqlite"), "dev")
    assert reopened.peek_seq("kws") == 3
    assert reopened.peek_seq("vibration") == 1
    assert [m.topic for m in reopened.pending(0, 10)] == ["t/0", "t/1", "t/2", "t/0"]


def test_a_crash_before_commit_loses_the_message_and_its_seq_together(tmp_path):
    db = SpoolDB(tmp_path / "s.sqlite")
    spool = Spool(db, "dev")
    _append(spool)
    db.commit()
    _append(spool)  # not committed: the process "dies" here
    survivor = Spool(SpoolDB(tmp_path / "s.sqlite"), "dev")  # another connection = after restart
    assert survivor.peek_seq("kws") == 1
    assert [m.payload for m in survivor.pending(0, 10)] == [b"0"]


def test_acknowledged_messages_leave_and_a_full_outbox_drops_the_oldest(tmp_path):
    spool = Spool(SpoolDB(tmp_path / "s.sqlite"), "dev", max_messages=5)
    for _ in range(8):
        _append(spool)
    assert len(spool) == 5 and spool.dropped == 3
    pending = spool.pending(0, 10)
    assert [m.payload for m in pending] == [b"3", b"4", b"5", b"6", b"7"]
    spool.ack(pending[0].id)
    spool.db.commit()  # acknowledgements are written per batch
    assert len(spool) == 4
    assert spool.pending(pending[0].id, 10)[0].payload == b"4"
    assert spool.peek_seq("kws") == 8  # dropping never rewinds seq: the loss shows as a gap


def test_devices_sharing_one_file_keep_separate_outboxes(tmp_path):
    db = SpoolDB(tmp_path / "s.sqlite")
    a, b = Spool(db, "a"), Spool(db, "b")
    _append(a)
    _append(a)
    _append(b)
    assert len(a) == 2 and len(b) == 1
    assert b.peek_seq("kws") == 1


def test_seq_tracker_counts_duplicates_and_gaps_and_fills_late_arrivals():
    tracker = SeqTracker()
    assert [tracker.add(s) for s in (0, 1, 3, 3, 1)] == [True, True, True, False, False]
    assert tracker.missing == 1
    assert tracker.add(2) and tracker.missing == 0
    assert tracker.contiguous == 3 and not tracker.above


def test_a_previous_runs_backlog_is_sent_before_new_messages_in_order(tmp_path):
    db = SpoolDB(tmp_path / "s.sqlite")
    spool = Spool(db, "dev")
    for _ in range(3):
        _append(spool)
    db.close()
    restarted = Spool(SpoolDB(tmp_path / "s.sqlite"), "dev")
    first = restarted.pending(0, 2)
    _append(restarted)  # a new window while the backlog is being sent
    rest = restarted.pending(first[-1].id, 10)
    _append(restarted)
    newest = restarted.pending(rest[-1].id, 10)
    assert [m.payload for m in first + rest + newest] == [b"0", b"1", b"2", b"3", b"4"]
    assert restarted.pending(newest[-1].id, 10) == []
