"""PostgreSQL storage of received predictions, one row per (device, task, seq) — the SQLite store's
twin for fleets whose predictions feed dashboards (Grafana), notebooks and other services.

Why PostgreSQL next to SQLite: several subscribers on several hosts can write one database, and
dashboards query it over the network while it fills. The interface is the one of
:class:`ops.store.PredictionStore` (``add``/``commit``/``keys``/``count``/``close``), so
the subscriber does not know which one it writes to; :func:`open_store` picks by URL.

How rows get in: ``add`` only queues a row; a batch (``commit_every`` rows or ``commit_interval_s``)
is sent with ``COPY`` into a temporary staging table and moved with
``INSERT … ON CONFLICT DO NOTHING`` in one transaction, so a duplicate delivery (QoS 1 re-send, an
outbox replayed after a crash, two subscribers) is dropped by the primary key and a failed batch
stays queued and is retried — nothing is lost when the database restarts. COPY is used because a
statement per message would cap the subscriber well below the fleet's rate.

``payload`` is stored as ``jsonb`` (query fields with ``payload->>'label'``), ``ts`` as
``timestamptz``. When the TimescaleDB extension is available the table becomes a hypertable on
``ts``; TimescaleDB requires the partitioning column in every unique index, so there the key is
(device, task, seq, ts) — a re-sent prediction carries the same ``ts``, so duplicates still drop.
"""

from __future__ import annotations

import datetime
import logging
import time
from pathlib import Path
from typing import Any

from device_sim.errors import ConfigError
from device_sim.mqtt.payload import Received

log = logging.getLogger(__name__)

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
TABLE = "predictions"
COLUMNS = (
    "device",
    "task",
    "seq",
    "ts",
    "window_start_ms",
    "window_end_ms",
    "received_ms",
    "valid",
    "model_version",
    "model_sha256",
    "payload",
)

_TABLE_SQL = """
CREATE TABLE IF NOT EXISTS {table} (
    device TEXT NOT NULL,
    task TEXT NOT NULL,
    seq BIGINT NOT NULL,
    ts TIMESTAMPTZ NOT NULL,
    window_start_ms BIGINT NOT NULL,
    window_end_ms BIGINT NOT NULL,
    received_ms BIGINT NOT NULL,
    valid BOOLEAN NOT NULL,
    model_version TEXT NOT NULL,
    model_sha256 TEXT NOT NULL,
    payload JSONB NOT NULL,
    PRIMARY KEY ({key})
)
"""


def is_postgres_url(target: str | Path) -> bool:
    return str(target).startswith(POSTGRES_SCHEMES)


def open_store(target: str | Path, **options: Any) -> Any:
    """A prediction store for ``target``: a ``postgresql://`` URL or an SQLite file path."""
    if is_postgres_url(target):
        return PostgresPredictionStore(str(target), **options)
    from ops.store import PredictionStore

    return PredictionStore(target, **options)


def _connect(url: str) -> Any:
    try:
        import psycopg
    except ImportError as exc:
        raise ConfigError(
            "--store postgresql://… needs psycopg 3: pip install 'tinyfleet[postgres]'"
        ) from exc
    try:
        return psycopg.connect(url, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise ConfigError(
            f"cannot connect to PostgreSQL at {_redacted(url)}: {str(exc).strip()} — is the "
            "server running and the URL (user, password, host, port, database) right?"
        ) from exc


def _redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    scheme, _, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at:
        return url
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else url


class PostgresPredictionStore:
    """Append-only, deduplicating, batched store in PostgreSQL (see the module docstring)."""

    def __init__(
        self,
        url: str,
        commit_every: int = 500,
        commit_interval_s: float = 0.5,
        table: str = TABLE,
    ) -> None:
        if not table.isidentifier():
            raise ConfigError(f"table name {table!r} must be a plain identifier")
        self.url = url
        self.table = table
        self.commit_every = commit_every
        self.commit_interval_s = commit_interval_s
        self._pending: list[tuple[Any, ...]] = []
        self._last_commit = time.monotonic()
        self.inserted = 0  # rows new to the table (duplicates excluded), counted per batch
        self.refused = 0  # rows whose body disagreed with the topic (issue #20), never stored
        self.rejected = 0  # rows PostgreSQL refused (e.g. a NUL character inside a JSON string)
        self._conn = _connect(url)
        self.hypertable = self._create_schema()

    def _create_schema(self) -> bool:
        with self._conn.transaction(), self._conn.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
            timescale = cursor.fetchone() is not None
            key = "device, task, seq, ts" if timescale else "device, task, seq"
            cursor.execute(_TABLE_SQL.format(table=self.table, key=key))
            if timescale:
                cursor.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
                cursor.execute(
                    "SELECT create_hypertable(%s, 'ts', if_not_exists => TRUE, "
                    "migrate_data => TRUE)",
                    (self.table,),
                )
        log.info(
            "storing predictions in %s table %s%s",
            _redacted(self.url),
            self.table,
            " (TimescaleDB hypertable)" if timescale else "",
        )
        return timescale

    def add(self, received: Received) -> bool:
        """Queue one prediction; True when queued (duplicates are dropped when the batch lands).

        Identity is the topic's (issue #20): a body that names another device or task is refused
        here as in the SQLite store, never stored."""
        prediction = received.prediction
        if not received.identity_ok:
            log.warning(
                "store refused a row: body says %r/%r but it arrived on %r",
                prediction.device,
                prediction.task,
                received.topic,
            )
            self.refused += 1
            return False
        self._pending.append(
            (
                prediction.device,
                prediction.task,
                prediction.seq,
                prediction.ts_ms,
                prediction.window_start_ms,
                prediction.window_end_ms,
                received.received_ms,
                bool(prediction.valid),
                prediction.model["version"],
                prediction.model["sha256"],
                received.payload.decode(),
            )
        )
        if (
            len(self._pending) >= self.commit_every
            or time.monotonic() - self._last_commit >= self.commit_interval_s
        ):
            self.commit()
        return True

    def commit_due_in(self) -> float | None:
        """Seconds until the queued rows must be sent (<= 0: now); None when none are queued."""
        if not self._pending:
            return None
        return self._last_commit + self.commit_interval_s - time.monotonic()

    def commit(self) -> None:
        """Send the queued rows as one transaction; on failure keep them queued for a retry."""
        self._last_commit = time.monotonic()
        if not self._pending:
            return
        import psycopg

        batch = self._pending
        try:
            self._ensure_connected()
            self.inserted += self._copy_batch(batch)
        except psycopg.DataError as exc:
            log.warning("a batch of %d rows was refused (%s): storing row by row", len(batch), exc)
            self.inserted += self._rows_one_by_one(batch)
        except psycopg.OperationalError as exc:
            log.warning(
                "PostgreSQL unreachable (%s); %d predictions stay queued and are retried",
                str(exc).strip(),
                len(batch),
            )
            self._drop_connection()
            return
        self._pending = []

    def _copy_batch(self, batch: list[tuple[Any, ...]]) -> int:
        columns = ", ".join(COLUMNS)
        with self._conn.transaction(), self._conn.cursor() as cursor:
            cursor.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS staging_{self.table} "
                f"(LIKE {self.table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            )
            with cursor.copy(f"COPY staging_{self.table} ({columns}) FROM STDIN") as copy:
                for row in batch:
                    copy.write_row(_row_for_copy(row))
            cursor.execute(
                f"INSERT INTO {self.table} ({columns}) SELECT {columns} FROM staging_{self.table} "
                "ON CONFLICT DO NOTHING"
            )
            return max(0, cursor.rowcount)

    def _rows_one_by_one(self, batch: list[tuple[Any, ...]]) -> int:
        import psycopg

        inserted = 0
        placeholders = ", ".join(["%s"] * len(COLUMNS))
        for row in batch:
            try:
                with self._conn.transaction(), self._conn.cursor() as cursor:
                    cursor.execute(
                        f"INSERT INTO {self.table} ({', '.join(COLUMNS)}) VALUES ({placeholders}) "
                        "ON CONFLICT DO NOTHING",
                        _row_for_copy(row),
                    )
                    inserted += max(0, cursor.rowcount)
            except psycopg.DataError as exc:
                self.rejected += 1
                log.warning("prediction %s/%s seq %s refused: %s", row[0], row[1], row[2], exc)
        return inserted

    def _ensure_connected(self) -> None:
        if self._conn is None or self._conn.closed:
            import psycopg

            self._conn = psycopg.connect(self.url, connect_timeout=5)

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    @property
    def pending(self) -> int:
        """Predictions queued but not yet in the database."""
        return len(self._pending)

    def keys(self) -> set[tuple[str, str, int]]:
        """Every stored (device, task, seq)."""
        self.commit()
        self._ensure_connected()
        with self._conn.cursor() as cursor:
            cursor.execute(f"SELECT device, task, seq FROM {self.table}")
            rows = {(device, task, int(seq)) for device, task, seq in cursor.fetchall()}
        self._conn.rollback()  # end the read transaction
        return rows

    def count(self) -> int:
        self.commit()
        self._ensure_connected()
        with self._conn.cursor() as cursor:
            cursor.execute(f"SELECT COUNT(*) FROM {self.table}")
            (count,) = cursor.fetchone()
        self._conn.rollback()
        return int(count)

    def close(self) -> None:
        self.commit()
        if self._pending:
            log.error(
                "%d predictions could not be written to %s before closing",
                len(self._pending),
                _redacted(self.url),
            )
        self._drop_connection()


def _row_for_copy(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """ts_ms → timestamptz; the payload text goes in as is (the parser already checked the JSON)."""
    values = list(row)
    values[3] = datetime.datetime.fromtimestamp(values[3] / 1000.0, tz=datetime.timezone.utc)
    return tuple(values)
