"""SQLite storage of received predictions, one row per (device, task, seq).

The primary key makes storage idempotent: a duplicate delivery (QoS 1 re-send, device re-sending
its outbox after a crash, two subscribers writing one file) is ignored, so the table holds each
prediction exactly once. Writes are batched (one transaction per ``commit_every`` rows or
``commit_interval_s``) because a commit per message would cap a subscriber at a few hundred
messages per second on an SD card. The interval bounds how long a received row waits to be stored
(default :data:`DEFAULT_COMMIT_INTERVAL_S`: 20 ms; WAL with ``synchronous=NORMAL`` makes a commit
cheap, so a short interval costs little throughput); the subscriber's loop commits a due batch
even when no further message arrives (:meth:`PredictionStore.commit_due_in`). Each row records
``stored_ms``, the wall-clock time its batch was written, so window-ready → stored latency is
``stored_ms - window_end_ms``.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from device_sim.mqtt.payload import Received

log = logging.getLogger(__name__)

DEFAULT_COMMIT_EVERY = 500  # rows per transaction at most
DEFAULT_COMMIT_INTERVAL_S = 0.02  # a received row is stored within this (s), plus the commit

_SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    device TEXT NOT NULL,
    task TEXT NOT NULL,
    seq INTEGER NOT NULL,
    ts_ms INTEGER NOT NULL,
    window_start_ms INTEGER NOT NULL,
    window_end_ms INTEGER NOT NULL,
    received_ms INTEGER NOT NULL,
    valid INTEGER NOT NULL,
    model_version TEXT NOT NULL,
    model_sha256 TEXT NOT NULL,
    payload TEXT NOT NULL,
    stored_ms INTEGER,
    PRIMARY KEY (device, task, seq)
) WITHOUT ROWID;
"""
_COLUMNS = (
    "device, task, seq, ts_ms, window_start_ms, window_end_ms, received_ms, valid, "
    "model_version, model_sha256, payload, stored_ms"
)


@dataclass
class BatchResult:
    """What one :meth:`PredictionStore.insert_batch` did with its rows (counts)."""

    inserted: int = 0
    duplicates: int = 0  # (device, task, seq) already stored
    refused: int = 0  # body/topic disagree, or SQLite would not take the row (logged)


class PredictionStore:
    """Append-only, deduplicating store; safe to reopen (rows from earlier runs count as seen).

    Rows arrive as :class:`~device_sim.mqtt.payload.Received` (topic + parsed body). A row is
    written only when the body's device/task equal its topic, which the broker authenticated, so
    one device can never store rows as another device nor make another device's real rows look
    like duplicates. Each batch is one transaction that commits or rolls back as a whole; a row
    SQLite refuses is logged, counted (``refused``) and skipped, and the next batch starts clean.
    """

    def __init__(
        self,
        path: str | Path,
        commit_every: int = DEFAULT_COMMIT_EVERY,
        commit_interval_s: float = DEFAULT_COMMIT_INTERVAL_S,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=5000")  # several subscribers may share the file
        self._conn.executescript(_SCHEMA)
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(predictions)")}
        if "stored_ms" not in columns:  # a file written before stored_ms existed
            self._conn.execute("ALTER TABLE predictions ADD COLUMN stored_ms INTEGER")
        self.commit_every = commit_every
        self.commit_interval_s = commit_interval_s
        self._pending: list[Received] = []
        self._last_commit = time.monotonic()
        self.inserted = 0
        self.duplicates = 0
        self.refused = 0

    def add(self, received: Received) -> None:
        """Queue one prediction; written with the batch (``commit_every`` rows or
        ``commit_interval_s`` seconds, whichever comes first; :meth:`commit` forces it)."""
        self._pending.append(received)
        if (
            len(self._pending) >= self.commit_every
            or time.monotonic() - self._last_commit >= self.commit_interval_s
        ):
            self.commit()

    def commit_due_in(self) -> float | None:
        """Seconds until the queued rows must be committed (<= 0: now); None when none queued.
        A network loop waits at most this long, so a row is stored within the interval even when
        no further message arrives."""
        if not self._pending:
            return None
        return self._last_commit + self.commit_interval_s - time.monotonic()

    def insert_batch(self, rows: Sequence[Received]) -> BatchResult:
        """Write ``rows`` in one transaction: all of them that SQLite takes, or none on failure."""
        result = BatchResult()
        if not rows:
            return result
        stored_ms = int(time.time() * 1000)
        self._conn.execute("BEGIN")
        try:
            for received in rows:
                outcome = self._insert(received, stored_ms)
                if outcome is None:
                    result.refused += 1
                elif outcome:
                    result.inserted += 1
                else:
                    result.duplicates += 1
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        self.inserted += result.inserted
        self.duplicates += result.duplicates
        self.refused += result.refused
        return result

    def _insert(self, received: Received, stored_ms: int) -> bool | None:
        """True: stored; False: a duplicate; None: refused (logged)."""
        p = received.prediction
        if not received.identity_ok:
            log.warning(
                "store refused a row: body says %r/%r but it arrived on %r",
                p.device,
                p.task,
                received.topic,
            )
            return None
        try:
            cursor = self._conn.execute(
                f"INSERT OR IGNORE INTO predictions ({_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    p.device,
                    p.task,
                    p.seq,
                    p.ts_ms,
                    p.window_start_ms,
                    p.window_end_ms,
                    received.received_ms,
                    int(p.valid),
                    p.model["version"],
                    p.model["sha256"],
                    received.payload.decode(),
                    stored_ms,
                ),
            )
        except (sqlite3.IntegrityError, sqlite3.DataError, sqlite3.InterfaceError) as exc:
            return self._refuse(received, exc)
        except (OverflowError, UnicodeError, ValueError) as exc:  # raised while binding
            return self._refuse(received, exc)
        if not self._conn.in_transaction:  # SQLite gave the whole transaction up
            raise sqlite3.OperationalError("SQLite rolled the batch back")
        return cursor.rowcount == 1

    def _refuse(self, received: Received, exc: Exception) -> None:
        p = received.prediction
        log.warning("store refused %s/%s seq %r: %s", p.device, p.task, p.seq, exc)
        return None

    def commit(self) -> None:
        """Write what :meth:`add` queued."""
        pending, self._pending = self._pending, []
        self.insert_batch(pending)
        self._last_commit = time.monotonic()

    def keys(self) -> set[tuple[str, str, int]]:
        """Every stored (device, task, seq)."""
        self.commit()
        return {
            tuple(row) for row in self._conn.execute("SELECT device, task, seq FROM predictions")
        }

    def count(self) -> int:
        self.commit()
        return int(self._conn.execute("SELECT COUNT(*) FROM predictions").fetchone()[0])

    def close(self) -> None:
        self.commit()
        self._conn.close()
