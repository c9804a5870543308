"""The device's outbox: a bounded on-disk queue (SQLite) plus the per-task sequence counters.

Why on disk: a device that loses its broker keeps measuring; its messages wait here and go out, in
order, when the broker is back — even if the device process was killed meanwhile. Every message is
written here first and deleted once the broker acknowledged it (QoS 1: PUBACK; QoS 0: written to
the socket), so a crash at any point re-sends rather than loses (subscribers dedup by seq).

The message and the advance of its task's ``seq`` counter are written in the same transaction and
only committed rows are ever sent: after a crash the counter resumes exactly after the last
message that can have left the device, so ``seq`` stays gap-free and unique.

A QoS 1 message the broker acknowledged can still be *held* here (``ack(id, hold=True)``) until
the publisher knows the broker's persistence holds it (:meth:`Spool.release`): mosquitto
acknowledges before it saves, so a broker crash right after a PUBACK would lose the message, and a
device crash at the same time would lose the only other copy if it lived in memory. Held rows do
not count in ``len(spool)``; after a device restart they are sent again (subscribers dedup).

When the outbox cannot be written (a full disk: SQLite says ``database or disk is full``), the
device keeps measuring: the failed batch is rolled back and its messages, and every new one, are
kept in memory (``Spool.unsaved``, bounded by ``max_messages``) and still sent; ``SpoolDB.failure``
says why, and listeners (the device's retained ``health`` message) are told. Once a write succeeds
again (retried every :data:`RETRY_S`), the unsaved messages and the ``seq`` counters are written with
their ids in one transaction and normal operation resumes; the file is never left half-written.
A device *crash* while the disk is full loses the unsaved messages (there was nowhere to keep them).

One :class:`SpoolDB` file can serve many devices of one process (a simulated fleet); each device
has a :class:`Spool` view. When a device's queue is full the **oldest** messages are dropped (recent
data is worth more to a dashboard) and counted in ``Spool.dropped``; the gap shows in ``seq``.
"""

from __future__ import annotations

import itertools
import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGES = 50_000  # per device: ~4.6 h of 3 windows/s, ~25 MB of predictions
RETRY_S = 1.0  # how often an unwritable outbox is tried again (s)
_DROPPED_MEMORY = 4096  # ids dropped while possibly in flight (> a publisher's max_unacked)

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

    def __init__(self, path: str | Path, *, max_bytes: int | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self._conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        # WAL + synchronous=NORMAL: a commit survives a process kill (not a power cut) without
        # an fsync per window; that is the crash the simulator and its tests model.
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)
        if max_bytes is not None:
            self.limit_size(max_bytes)
        self._in_transaction = False
        self._dirty: set[Spool] = set()
        self._spools: list[Spool] = []
        self._batch: list[tuple[Spool, SpooledMessage]] = []  # appended since the last commit
        row = self._conn.execute("SELECT MAX(id) FROM outbox").fetchone()
        self._last_id = int(row[0] or 0)
        self.failure: str | None = None  # why the outbox cannot be written, None when it can
        self.write_failures = 0
        self._retry_at = 0.0
        # called with the failure text (or None when writable again), under the lock
        self.on_state_change: list[Callable[[str | None], None]] = []

    def limit_size(self, max_bytes: int | None) -> None:
        """A quota for the file (bytes; None: as large as SQLite allows). Beyond it SQLite reports
        ``database or disk is full``, exactly as on a full disk, and the outbox behaves so."""
        with self.lock:
            page = int(self._conn.execute("PRAGMA page_size").fetchone()[0])
            pages = 4294967294 if max_bytes is None else max(1, int(max_bytes) // page)
            self._conn.execute(f"PRAGMA max_page_count = {pages}")

    def size_bytes(self) -> int:
        """Bytes the database file uses now (pages × page size; the WAL not included)."""
        with self.lock:
            count = self._conn.execute("PRAGMA page_count").fetchone()[0]
            return int(count) * int(self._conn.execute("PRAGMA page_size").fetchone()[0])

    def insert(self, spool: Spool, topic: str, payload: bytes, qos: int, retain: bool):
        """Add a message to the open batch; in memory only (unsaved) while writes fail."""
        with self.lock:
            if self.failure is None:
                try:
                    cursor = self.execute(
                        "INSERT INTO outbox (device, topic, payload, qos, retain) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (spool.device, topic, payload, qos, int(retain)),
                    )
                except sqlite3.Error as exc:
                    self._fail(exc)
                else:
                    self._last_id = max(self._last_id, int(cursor.lastrowid or 0))
                    message = SpooledMessage(self._last_id, topic, payload, qos, retain)
                    self._batch.append((spool, message))
                    return message
            self._last_id += 1  # ids stay unique and increasing across the outage
            message = SpooledMessage(self._last_id, topic, payload, qos, retain)
            spool.keep_unsaved(message)
            return message

    def _fail(self, exc: sqlite3.Error) -> None:
        """Roll the batch back and keep its messages in memory; say so once."""
        first = self.failure is None
        self.failure = f"{type(exc).__name__}: {exc}"
        self.write_failures += 1
        self._retry_at = time.monotonic() + RETRY_S
        if self._conn.in_transaction:
            try:
                self._conn.execute("ROLLBACK")
            except sqlite3.Error:
                log.exception("outbox %s: rollback failed", self.path)
        self._in_transaction = False
        for spool, message in self._batch:
            spool.keep_unsaved(message)
        self._batch = []
        for spool in self._spools:
            spool.batch_rolled_back()
        if first:
            log.error(
                "outbox %s cannot be written (%s): devices keep measuring and sending from memory; "
                "free disk space — writing resumes by itself",
                self.path,
                exc,
            )
            for listener in list(self.on_state_change):
                listener(self.failure)

    def _recover(self) -> None:
        """Try to write what is only in memory; on success the outbox is normal again."""
        self._retry_at = time.monotonic() + RETRY_S
        try:
            self._conn.execute("BEGIN")
            for spool in self._spools:
                spool.write_unsaved()
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            self.write_failures += 1
            log.debug("outbox %s still unwritable: %s", self.path, exc)
            return
        for spool in self._spools:
            spool.unsaved_written()
        log.warning("outbox %s is writable again; messages kept in memory are saved", self.path)
        self.failure = None
        for listener in list(self.on_state_change):
            listener(None)

    def mark_dirty(self, spool: Spool) -> None:
        """``spool`` has counters/acknowledgements to write with the next commit."""
        self._dirty.add(spool)

    def execute_many(self, sql: str, rows: list[tuple]) -> sqlite3.Cursor:
        with self.lock:
            if not self._in_transaction:
                self._conn.execute("BEGIN")
                self._in_transaction = True
            return self._conn.executemany(sql, rows)

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
        """Make everything appended so far durable; only then may it be sent (while the outbox
        cannot be written, messages are sent from memory and writing is retried)."""
        with self.lock:
            if self.failure is not None:
                if time.monotonic() >= self._retry_at:
                    self._recover()
                return
            try:
                while self._dirty:
                    self._dirty.pop().flush()
                if self._in_transaction:
                    self._conn.execute("COMMIT")
                    self._in_transaction = False
            except sqlite3.Error as exc:
                self._fail(exc)
                return
            self._batch = []
            for spool in self._spools:
                spool.batch_committed()

    def close(self) -> None:
        with self.lock:
            self.commit()
            if self.failure is not None:
                self._recover()
            unsaved = sum(len(spool.unsaved) for spool in self._spools)
            if unsaved:
                log.error(
                    "outbox %s: %d unsent messages were never saved (disk full)", self.path, unsaved
                )
            self._conn.close()


class Spool:
    """One device's outbox and ``seq`` counters inside a :class:`SpoolDB`.

    To keep a window's cost low, the ``seq`` counter and acknowledgements are written once per
    batch (in :meth:`SpoolDB.commit`, inside the same transaction as the messages), and messages
    appended by this process are handed to the publisher from memory instead of being read back
    (up to :data:`RECENT_CAP`; beyond that, and for a previous run's backlog, from SQLite).
    """

    RECENT_CAP = 2000

    def __init__(self, db: SpoolDB, device: str, max_messages: int = DEFAULT_MAX_MESSAGES) -> None:
        if max_messages < 1:
            raise ValueError("max_messages must be >= 1")
        self.db = db
        self.device = device
        self.max_messages = max_messages
        self.dropped = 0
        rows = db.query("SELECT task, next FROM seq WHERE device = ?", (device,))
        self._next_seq = {task: int(value) for task, value in rows}
        # every row left by a previous run is unacknowledged for this one (held rows included)
        self._count = int(db.query("SELECT COUNT(*) FROM outbox WHERE device = ?", (device,))[0][0])
        self._seq_dirty: set[str] = set()
        self._deletes: list[tuple[int]] = []
        self._deletes_in_batch: list[tuple[int]] = []  # written, not yet committed
        self._held: set[int] = set()  # acknowledged, kept until released
        self._dropped_ids: deque[int] = deque(maxlen=_DROPPED_MEMORY)
        self.unsaved: dict[int, SpooledMessage] = {}  # only in memory: the outbox was unwritable
        # ids deleted lately: deleted again after an outage, since SQLite on a full disk may keep
        # rows of a transaction that reported success just before the failure (seen on tmpfs)
        self._recently_deleted: deque[tuple[int]] = deque(maxlen=_DROPPED_MEMORY)
        db._spools.append(self)
        self._recent: deque[SpooledMessage] = deque()
        self._from_disk = self._count > 0  # a previous run's backlog is read back from SQLite

    def __len__(self) -> int:
        """Messages not yet acknowledged by the broker."""
        return self._count

    @property
    def held(self) -> int:
        """Acknowledged messages kept until the broker's persistence is known to hold them."""
        return len(self._held)

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
            message = self.db.insert(self, topic, payload, qos, retain)
            message_id = message.id
            if seq_task is not None and seq is not None:
                self._next_seq[seq_task] = seq + 1
                self._seq_dirty.add(seq_task)
                self.db.mark_dirty(self)
            self._count += 1
            if not self._from_disk:
                if len(self._recent) >= self.RECENT_CAP:
                    self._from_disk = True  # a long outage: read back from SQLite when it ends
                    self._recent.clear()
                else:
                    self._recent.append(message)
            return message_id

    def flush(self) -> None:
        """Write the seq counters and delete acknowledged messages (called by SpoolDB.commit)."""
        if self._seq_dirty:
            self.db.execute_many(
                "INSERT INTO seq (device, task, next) VALUES (?, ?, ?) "
                "ON CONFLICT (device, task) DO UPDATE SET next = excluded.next",
                [(self.device, task, self._next_seq[task]) for task in self._seq_dirty],
            )
            self._seq_dirty.clear()
        if self._deletes:
            self.db.execute_many("DELETE FROM outbox WHERE id = ?", self._deletes)
            self._deletes_in_batch += self._deletes
            self._recently_deleted.extend(self._deletes)
            self._deletes = []

    # -- an unwritable outbox (called by SpoolDB under its lock) ---------------------------------
    def keep_unsaved(self, message: SpooledMessage) -> None:
        self.unsaved[message.id] = message

    def batch_committed(self) -> None:
        self._deletes_in_batch = []

    def batch_rolled_back(self) -> None:
        self._deletes = self._deletes_in_batch + self._deletes
        self._deletes_in_batch = []
        self._seq_dirty = set(self._next_seq)  # rewritten with the next successful batch

    def write_unsaved(self) -> None:
        """Write unsaved messages (with their ids), counters and deletions; no state changes."""
        conn = self.db._conn
        conn.executemany(
            "INSERT OR REPLACE INTO outbox (id, device, topic, payload, qos, retain) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [
                (m.id, self.device, m.topic, m.payload, m.qos, int(m.retain))
                for m in sorted(self.unsaved.values(), key=lambda m: m.id)
            ],
        )
        conn.executemany(
            "INSERT INTO seq (device, task, next) VALUES (?, ?, ?) "
            "ON CONFLICT (device, task) DO UPDATE SET next = excluded.next",
            [(self.device, task, value) for task, value in self._next_seq.items()],
        )
        conn.executemany("DELETE FROM outbox WHERE id = ?", self._deletes)
        conn.executemany("DELETE FROM outbox WHERE id = ?", list(self._recently_deleted))

    def unsaved_written(self) -> None:
        self.unsaved = {}
        self._deletes = []
        self._seq_dirty.clear()

    def _drop_oldest(self) -> None:
        if self.db.failure is not None:  # nothing on disk can change: drop from memory
            if self.unsaved:
                oldest = min(self.unsaved)
                del self.unsaved[oldest]
                self._dropped_ids.append(oldest)
                if self._recent and self._recent[0].id == oldest:
                    self._recent.popleft()
                self._count -= 1
                self.dropped += 1
            return
        try:
            self.flush()  # so that the oldest row is not one already acknowledged
            rows = self.db.query(
                "SELECT id FROM outbox WHERE device = ? ORDER BY id LIMIT ?",
                (self.device, len(self._held) + 1),
            )
            unacknowledged = [int(r[0]) for r in rows if int(r[0]) not in self._held]
            if not unacknowledged:
                return
            oldest = unacknowledged[0]
            self.db.execute("DELETE FROM outbox WHERE id = ?", (oldest,))
        except sqlite3.Error as exc:
            self.db._fail(exc)
            return
        self._dropped_ids.append(oldest)  # it may be in flight: its PUBACK must not count again
        if self._recent and self._recent[0].id == oldest:
            self._recent.popleft()
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
        with self.db.lock:
            if not self._from_disk:
                while self._recent and self._recent[0].id <= after_id:
                    self._recent.popleft()
                return list(itertools.islice(self._recent, limit))
            rows = self.db.query(
                "SELECT id, topic, payload, qos, retain FROM outbox WHERE device = ? AND id > ? "
                "ORDER BY id LIMIT ?",
                (self.device, after_id, limit),
            )
            if len(rows) < limit:  # caught up: everything appended so far is in `rows`
                self._from_disk = False
                self._recent.clear()
            messages = [
                SpooledMessage(int(r[0]), r[1], bytes(r[2]), int(r[3]), bool(r[4])) for r in rows
            ]
            if self.unsaved:  # merged in id order with what could not be written
                merged = {m.id: m for m in messages}
                merged.update((i, m) for i, m in self.unsaved.items() if i > after_id)
                messages = [merged[i] for i in sorted(merged)][:limit]
                if len(messages) == limit:
                    self._from_disk = True
        return messages

    def ack(self, message_id: int, *, hold: bool = False) -> None:
        """The broker acknowledged the message: deleted with the next batch, or, with ``hold``,
        kept on disk until :meth:`release` (sent again if the device restarts before that).

        Acknowledging a held message again (it was re-sent after a reconnect) keeps it held.
        """
        with self.db.lock:
            if message_id in self._held:
                if not hold:
                    self.release([message_id])
                return
            if message_id in self._dropped_ids:
                self._dropped_ids.remove(message_id)
                return  # dropped for space while in flight: already uncounted
            self._count -= 1
            if hold:
                self._held.add(message_id)
            else:
                # also when it was unsaved: a failed commit may still have reached the disk
                self.unsaved.pop(message_id, None)
                self._deletes.append((message_id,))
                self.db.mark_dirty(self)

    def release(self, message_ids: list[int]) -> None:
        """The broker's persistence holds these held messages: delete them with the next batch."""
        with self.db.lock:
            for message_id in message_ids:
                if message_id in self._held:
                    self._held.discard(message_id)
                    self.unsaved.pop(message_id, None)
                    self._deletes.append((message_id,))
            self.db.mark_dirty(self)
