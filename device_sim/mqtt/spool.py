"""The device's outbox: a bounded on-disk queue (SQLite) plus the per-task sequence counters.

Why on disk: a device that loses its broker keeps measuring; its messages wait here and go out, in
order, when the broker is back — even if the device process was killed meanwhile. Every message is
written here first and deleted once the broker acknowledged it (QoS 1: PUBACK; QoS 0: written to
the socket), so a crash at any point re-sends rather than loses (subscribers dedup by seq).

The message and the advance of its task's ``seq`` counter are written in the same transaction and
only committed rows are ever sent: after a crash the counter resumes exactly after the last
message that can have left the device, so ``seq`` stays gap-free and unique.

One :class:`SpoolDB` file can serve many devices of one process (a simulated fleet); each device
has a :class:`Spool` view. When a device's queue is full the **oldest** messages are dropped (recent
data is worth more to a dashboard) and counted in ``Spool.dropped``; the gap shows in ``seq``.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGES = 50_000  # per device: ~4.6 h of 3 windows/s, ~25 MB of predictions

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_device ON outbox (device, id);
CREATE TABLE IF NOT EXISTS seq (
    device TEXT NOT NULL,
    task TEXT NOT NULL,
    next INTEGER NOT NULL,
    PRIMARY KEY (device, task)
);
"""


@dataclass(frozen=True)
class SpooledMessage:
    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool


class SpoolDB:
    """One SQLite file (WAL) shared by the devices of a process; writes batch until :meth:`commit`.

    Thread-safe: a device thread appends while the network thread acknowledges.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self._conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        # WAL + synchronous=NORMAL: a commit survives a process kill (not a power cut) without
        # an fsync per window; that is the crash the simulator and its tests model.
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)
        self._in_transaction = False

    def execute(self, sql: str, params: tuple = ()) -> sqlite3.Cursor:
        """Run a write inside the open batch (a transaction is opened on first use)."""
        with self.lock:
            if not self._in_transaction:
                self._conn.execute("BEGIN")
                self._in_transaction = True
            return self._conn.execute(sql, params)

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self.lock:
            return self._conn.execute(sql, params).fetchall()

    def commit(self) -> None:
        """Make everything appended so far durable; only then may it be sent."""
        with self.lock:
            if self._in_transaction:
                self._conn.execute("COMMIT")
                self._in_transaction = False

    def close(self) -> None:
        with self.lock:
            self.commit()
            self._conn.close()


class Spool:
    """One device's outbox and ``seq`` counters inside a :class:`SpoolDB`."""

    def __init__(self, db: SpoolDB, device: str, max_messages: int = DEFAULT_MAX_MESSAGES) -> None:
        if max_messages < 1:
            raise ValueError("max_messages must be >= 1")
        self.db = db
        self.device = device
        self.max_messages = max_messages
        self.dropped = 0
        rows = db.query("SELECT task, next FROM seq WHERE device = ?", (device,))
        self._next_seq = {task: int(value) for task, value in rows}
        self._count = int(db.query("SELECT COUNT(*) FROM outbox WHERE device = ?", (device,))[0][0])

    def __len__(self) -> int:
        return self._count

    def peek_seq(self, task: str) -> int:
        """The seq the next message of ``task`` will get."""
        return self._next_seq.get(task, 0)

    def append(
        self,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool = False,
        *,
        seq_task: str | None = None,
        seq: int | None = None,
    ) -> int:
        """Queue a message; with ``seq_task`` also record that ``seq`` of that task is used."""
        with self.db.lock:
            if self._count >= self.max_messages:
                self._drop_oldest()
            cursor = self.db.execute(
                "INSERT INTO outbox (device, topic, payload, qos, retain) VALUES (?, ?, ?, ?, ?)",
                (self.device, topic, payload, qos, int(retain)),
            )
            if seq_task is not None and seq is not None:
                self._next_seq[seq_task] = seq + 1
                self.db.execute(
                    "INSERT INTO seq (device, task, next) VALUES (?, ?, ?) "
                    "ON CONFLICT (device, task) DO UPDATE SET next = excluded.next",
                    (self.device, seq_task, seq + 1),
                )
            self._count += 1
            return int(cursor.lastrowid or 0)

    def _drop_oldest(self) -> None:
        self.db.execute(
            "DELETE FROM outbox WHERE id = (SELECT MIN(id) FROM outbox WHERE device = ?)",
            (self.device,),
        )
        self._count -= 1
        self.dropped += 1
        if self.dropped == 1 or self.dropped % 1000 == 0:
            log.warning(
                "device %s: outbox full (%d messages); dropped the oldest (%d so far) — the broker "
                "has been unreachable too long; raise --spool-max to keep more",
                self.device,
                self.max_messages,
                self.dropped,
            )

    def pending(self, after_id: int, limit: int) -> list[SpooledMessage]:
        """Messages with id > ``after_id``, oldest first, after committing the open batch."""
        self.db.commit()
        rows = self.db.query(
            "SELECT id, topic, payload, qos, retain FROM outbox WHERE device = ? AND id > ? "
            "ORDER BY id LIMIT ?",
            (self.device, after_id, limit),
        )
        return [SpooledMessage(int(r[0]), r[1], bytes(r[2]), int(r[3]), bool(r[4])) for r in rows]

    def ack(self, message_id: int) -> None:
        """The broker has it: forget the message (committed with the next batch)."""
        with self.db.lock:
            cursor = self.db.execute("DELETE FROM outbox WHERE id = ?", (message_id,))
            if cursor.rowcount:
                self._count -= 1
