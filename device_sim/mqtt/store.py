"""SQLite storage of received predictions, one row per (device, task, seq).

The primary key makes storage idempotent: a duplicate delivery (QoS 1 re-send, device re-sending
its outbox after a crash, two subscribers writing one file) is ignored, so the table holds each
prediction exactly once. Writes are batched (one transaction per ``commit_every`` rows or
``commit_interval_s``) because a commit per message would cap a subscriber at a few hundred
messages per second on an SD card.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from device_sim.mqtt.payload import Prediction

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
    PRIMARY KEY (device, task, seq)
) WITHOUT ROWID;
"""


class PredictionStore:
    """Append-only, deduplicating store; safe to reopen (rows from earlier runs count as seen)."""

    def __init__(
        self, path: str | Path, commit_every: int = 500, commit_interval_s: float = 0.5
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=5000")  # several subscribers may share the file
        self._conn.executescript(_SCHEMA)
        self.commit_every = commit_every
        self.commit_interval_s = commit_interval_s
        self._pending = 0
        self._last_commit = time.monotonic()
        self.inserted = 0

    def add(self, prediction: Prediction, payload: bytes, received_ms: int) -> bool:
        """Store one prediction; False if (device, task, seq) was already stored."""
        if self._pending == 0:
            self._conn.execute("BEGIN")
        cursor = self._conn.execute(
            "INSERT OR IGNORE INTO predictions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                prediction.device,
                prediction.task,
                prediction.seq,
                prediction.ts_ms,
                prediction.window_start_ms,
                prediction.window_end_ms,
                received_ms,
                int(prediction.valid),
                prediction.model["version"],
                prediction.model["sha256"],
                payload.decode(),
            ),
        )
        self._pending += 1
        if (
            self._pending >= self.commit_every
            or time.monotonic() - self._last_commit >= self.commit_interval_s
        ):
            self.commit()
        new = cursor.rowcount == 1
        self.inserted += new
        return new

    def commit(self) -> None:
        if self._pending:
            self._conn.execute("COMMIT")
            self._pending = 0
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
