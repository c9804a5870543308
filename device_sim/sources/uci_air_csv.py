"""Read the UCI Air Quality CSV exactly as distributed, or a generic CSV, with numpy and csv only.

The UCI file (De Vito et al., 2008; UCI ML repository "Air Quality") is ``;``-separated with decimal
commas, ``Date`` as DD/MM/YYYY and ``Time`` as HH.MM.SS, ``-200`` for a missing value, two trailing
empty columns (``;;``) on every line and a block of empty rows (``;;;;…``) at the end. A generic CSV
(``,`` ``;`` or tab separated) has a header; ``column_map`` renames its columns onto the canonical
UCI names (``--column SOURCE=CANONICAL``); its time is a ``timestamp`` column (ISO 8601) or UCI-style
``Date`` + ``Time`` columns, or absent (rows are then taken as consecutive periods).

Policy, so nothing is silently wrong:

* ``-200``, empty, ``NA``/``NaN``/``null`` fields are missing (NaN). No value is imputed here.
* Empty rows are skipped and counted. A malformed line (unparsable number, date or time, more
  values than header columns, a timestamp not after the previous one) is skipped, counted and its
  line number kept in :class:`LoadReport`; a :class:`DataError` is raised only if no usable row is
  left.
* Rows are put on a regular grid of ``row_seconds`` (3600 s): readings faster than that are averaged
  per period (NaN-aware), and missing periods become all-NaN rows. A window over a gap is therefore
  visibly incomplete instead of silently joining hours that are not adjacent.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from device_sim.errors import DataError

log = logging.getLogger(__name__)

MISSING_VALUE = -200.0
MISSING_TOKENS = {"", "na", "nan", "null", "none", "-"}
SENSOR_COLUMNS = ("PT08.S1(CO)", "PT08.S2(NMHC)", "PT08.S3(NOx)", "PT08.S4(NO2)", "PT08.S5(O3)")
WEATHER_COLUMNS = ("T", "RH", "AH")
TARGET_COLUMNS = ("CO(GT)", "NO2(GT)", "C6H6(GT)")
OTHER_REFERENCE_COLUMNS = ("NMHC(GT)", "NOx(GT)")
NUMERIC_COLUMNS = (
    "CO(GT)",
    "PT08.S1(CO)",
    "NMHC(GT)",
    "C6H6(GT)",
    "PT08.S2(NMHC)",
    "NOx(GT)",
    "PT08.S3(NOx)",
    "NO2(GT)",
    "PT08.S4(NO2)",
    "PT08.S5(O3)",
    "T",
    "RH",
    "AH",
)
TIME_COLUMNS = ("Date", "Time", "timestamp")
# Columns computed from the timestamp (the device's clock), not read from the file.
DERIVED_COLUMNS = ("hour", "weekday")
MAX_GRID_ROWS = 5_000_000
MAX_EXAMPLES = 20


class MalformedRow(ValueError):
    """One line cannot be used; the message says why."""


@dataclass
class LoadReport:
    """What reading a CSV found: counts and the first malformed lines, for the user and the bundle."""

    source: str = ""
    format: str = ""
    lines_read: int = 0
    rows_parsed: int = 0
    empty_rows: int = 0
    malformed_rows: int = 0
    malformed_examples: list[tuple[int, str]] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    rows_averaged: int = 0  # input rows merged into an earlier row of the same period
    gap_rows_inserted: int = 0  # all-NaN rows put in for missing periods
    missing_values: dict[str, int] = field(default_factory=dict)

    def malformed(self, line_no: int, reason: str) -> None:
        self.malformed_rows += 1
        if len(self.malformed_examples) < MAX_EXAMPLES:
            self.malformed_examples.append((line_no, reason))

    def to_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "format": self.format,
            "lines_read": self.lines_read,
            "rows_parsed": self.rows_parsed,
            "empty_rows": self.empty_rows,
            "malformed_rows": self.malformed_rows,
            "malformed_examples": [f"line {n}: {reason}" for n, reason in self.malformed_examples],
            "ignored_columns": list(self.ignored_columns),
            "rows_averaged": self.rows_averaged,
            "gap_rows_inserted": self.gap_rows_inserted,
            "missing_values": dict(self.missing_values),
        }


@dataclass
class AirQualityTable:
    """Rows on a regular time grid: ``values`` (n_rows, n_columns) float64 with NaN for missing.

    ``timestamps`` are the start of each period in seconds since 1970-01-01 of the file's own
    (naive, local) clock, or None when the file has no time columns.
    """

    columns: tuple[str, ...]
    values: np.ndarray
    timestamps: np.ndarray | None
    row_seconds: float = 3600.0
    report: LoadReport = field(default_factory=LoadReport)

    def __len__(self) -> int:
        return len(self.values)

    def has(self, name: str) -> bool:
        if name in DERIVED_COLUMNS:
            return self.timestamps is not None
        return name in self.columns

    def column(self, name: str) -> np.ndarray:
        """One column by canonical name; ``hour`` (0–23) and ``weekday`` (0 = Monday) from the clock."""
        if name in DERIVED_COLUMNS:
            if self.timestamps is None:
                raise DataError(
                    f"{name!r} needs timestamps but {self.report.source or 'the data'} has no "
                    "Date/Time or timestamp column"
                )
            return derived_time_column(self.timestamps, name)
        if name not in self.columns:
            raise DataError(
                f"column {name!r} is not in {self.report.source or 'the data'} (it has "
                f"{', '.join(self.columns)}); map yours with --column SOURCE={name}"
            )
        return self.values[:, self.columns.index(name)]

    def matrix(self, names: Iterable[str]) -> np.ndarray:
        """Columns ``names`` side by side, ``(n_rows, len(names))`` float64."""
        names = list(names)
        if not names:
            return np.empty((len(self), 0))
        return np.stack([self.column(name) for name in names], axis=1)


def derived_time_column(timestamps: np.ndarray, name: str) -> np.ndarray:
    """Hour of day (0–23) or weekday (0 = Monday … 6 = Sunday) of epoch-second timestamps."""
    seconds = np.asarray(timestamps, dtype=np.int64)
    if name == "hour":
        return ((seconds // 3600) % 24).astype(np.float64)
    if name == "weekday":
        return ((seconds // 86400 + 3) % 7).astype(np.float64)  # 1970-01-01 was a Thursday
    raise ValueError(f"unknown derived column {name!r}")


def _number(token: str, decimal_comma: bool) -> float:
    token = token.strip()
    if token.lower() in MISSING_TOKENS:
        return math.nan
    if decimal_comma:
        token = token.replace(",", ".")
    value = float(token)  # ValueError → malformed
    if not math.isfinite(value) or value == MISSING_VALUE:
        return math.nan
    return value


def _uci_timestamp(date: str, time: str) -> int:
    try:
        day, month, year = (int(part) for part in date.strip().split("/"))
        hour, minute, second = (int(part) for part in time.strip().replace(":", ".").split("."))
        moment = datetime(year, month, day, hour, minute, second, tzinfo=timezone.utc)
    except ValueError as exc:
        raise MalformedRow(
            f"bad Date/Time {date!r} {time!r} (want DD/MM/YYYY and HH.MM.SS)"
        ) from exc
    return int(moment.timestamp())


def _iso_timestamp(text: str) -> int:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise MalformedRow(
            f"bad timestamp {text!r} (want ISO 8601, e.g. 2004-03-10T18:00)"
        ) from exc
    if moment.tzinfo is not None:  # keep the wall clock the readings were taken in
        moment = moment.replace(tzinfo=None)
    return int(moment.replace(tzinfo=timezone.utc).timestamp())


class CsvRowParser:
    """Parses the lines of one CSV after its header: canonical columns, decimal commas, timestamps."""

    def __init__(
        self, header_line: str, column_map: Iterable[tuple[str, str]] = (), *, source: str = ""
    ) -> None:
        self.delimiter = _delimiter(header_line)
        header = [
            name.strip().strip('"')
            for name in next(csv.reader([header_line], delimiter=self.delimiter))
        ]
        while header and header[-1] == "":
            header.pop()  # the UCI file's trailing ';;'
        if not header:
            raise DataError(f"{source or 'the CSV'} has an empty header line")
        mapping = dict(column_map)
        unknown_sources = sorted(set(mapping) - set(header))
        if unknown_sources:
            raise DataError(
                f"--column names {unknown_sources} are not in the header of {source or 'the CSV'} "
                f"({', '.join(header)})"
            )
        bad_targets = sorted(set(mapping.values()) - set(NUMERIC_COLUMNS) - set(TIME_COLUMNS))
        if bad_targets:
            raise DataError(
                f"--column maps onto unknown canonical name(s) {bad_targets}; use one of "
                f"{', '.join(NUMERIC_COLUMNS + TIME_COLUMNS)}"
            )
        canonical = [mapping.get(name, name) for name in header]
        self.header = header
        # ';'-separated files use the decimal comma (the UCI file does); others the decimal point.
        self.decimal_comma = self.delimiter == ";"
        self.format = "uci" if {"Date", "Time", "CO(GT)"} <= set(header) else "generic"
        self.columns = tuple(name for name in canonical if name in NUMERIC_COLUMNS)
        if len(set(self.columns)) != len(self.columns):
            raise DataError(f"{source or 'the CSV'} maps two columns onto the same canonical name")
        self._value_index = [canonical.index(name) for name in self.columns]
        self.ignored_columns = [
            h
            for h, c in zip(header, canonical, strict=True)
            if c not in NUMERIC_COLUMNS + TIME_COLUMNS
        ]
        if "timestamp" in canonical:
            self._time = ("iso", canonical.index("timestamp"), -1)
        elif "Date" in canonical and "Time" in canonical:
            self._time = ("uci", canonical.index("Date"), canonical.index("Time"))
        else:
            self._time = None
        if not self.columns:
            raise DataError(
                f"{source or 'the CSV'} has none of the columns tinyfleet reads ({', '.join(header)});"
                f" map them with --column SOURCE=CANONICAL, canonical names: "
                f"{', '.join(NUMERIC_COLUMNS)}"
            )
        self.n_fields = len(header)

    @property
    def timed(self) -> bool:
        return self._time is not None

    def parse(self, line: str) -> tuple[int | None, np.ndarray] | None:
        """One line → (timestamp or None, values in ``self.columns`` order); None for an empty row."""
        fields = next(csv.reader([line], delimiter=self.delimiter), [])
        while fields and fields[-1].strip() == "":
            fields.pop()
        if not fields:
            return None
        if len(fields) > self.n_fields:
            raise MalformedRow(f"{len(fields)} values for {self.n_fields} header columns")
        fields += [""] * (self.n_fields - len(fields))
        try:
            values = np.array(
                [_number(fields[i], self.decimal_comma) for i in self._value_index],
                dtype=np.float64,
            )
        except ValueError as exc:
            raise MalformedRow(f"not a number: {exc}") from exc
        timestamp = None
        if self._time is not None:
            mode, first, second = self._time
            if mode == "iso":
                timestamp = _iso_timestamp(fields[first])
            else:
                timestamp = _uci_timestamp(fields[first], fields[second])
        return timestamp, values


def _delimiter(header_line: str) -> str:
    counts = {d: header_line.count(d) for d in (";", "\t", ",")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


class RowGrid:
    """Puts timed rows on a regular ``row_seconds`` grid, streaming.

    Rows in the same period are averaged (NaN-aware); missing periods come out as all-NaN rows.
    ``push`` returns the periods that are complete, so a stdin source can emit them at once.
    """

    def __init__(self, n_columns: int, row_seconds: float, report: LoadReport) -> None:
        self.n_columns = n_columns
        self.row_seconds = float(row_seconds)
        self.report = report
        self._period: int | None = None
        self._sum = np.zeros(n_columns)
        self._count = np.zeros(n_columns)

    def _close(self) -> tuple[int, np.ndarray]:
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(self._count > 0, self._sum / np.maximum(self._count, 1), np.nan)
        return int(round(self._period * self.row_seconds)), mean

    def push(self, timestamp: int, values: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """Add one reading; raises :class:`MalformedRow` if its time is before the current period."""
        period = int(timestamp // self.row_seconds)
        out: list[tuple[int, np.ndarray]] = []
        if self._period is not None and period < self._period:
            raise MalformedRow(
                "timestamp is before the previous row's (rows must be in time order)"
            )
        if self._period is not None and period == self._period:
            self.report.rows_averaged += 1
        elif self._period is not None:
            out.append(self._close())
            gap = period - self._period - 1
            if gap > MAX_GRID_ROWS:
                raise MalformedRow(f"a gap of {gap} periods after the previous row")
            for k in range(1, gap + 1):
                out.append(
                    (
                        int(round((self._period + k) * self.row_seconds)),
                        np.full(self.n_columns, np.nan),
                    )
                )
            self.report.gap_rows_inserted += gap
            self._sum[:] = 0
            self._count[:] = 0
        self._period = period
        finite = np.isfinite(values)
        self._sum[finite] += values[finite]
        self._count[finite] += 1
        return out

    def flush(self) -> list[tuple[int, np.ndarray]]:
        if self._period is None:
            return []
        closed = [self._close()]
        self._period = None
        return closed


def iter_rows(
    lines: Iterable[str],
    column_map: Iterable[tuple[str, str]] = (),
    *,
    row_seconds: float = 3600.0,
    source: str = "",
    report: LoadReport | None = None,
) -> Iterator[tuple[CsvRowParser, int | None, np.ndarray]]:
    """Stream a CSV: yields (parser, period start or None, values) per grid row, as they complete.

    The first non-empty line is the header. Malformed and empty rows are counted in ``report``.
    """
    report = report if report is not None else LoadReport(source=source)
    parser: CsvRowParser | None = None
    grid: RowGrid | None = None
    for line_no, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n").lstrip("\ufeff")
        report.lines_read += 1
        if parser is None:
            if line.strip(" ;,\t") == "":
                continue
            parser = CsvRowParser(line, column_map, source=source)
            report.format = parser.format
            report.ignored_columns = parser.ignored_columns
            grid = RowGrid(len(parser.columns), row_seconds, report) if parser.timed else None
            continue
        try:
            parsed = parser.parse(line)
            if parsed is None:
                report.empty_rows += 1
                continue
            timestamp, values = parsed
            closed = [(None, values)] if grid is None else grid.push(timestamp, values)
        except MalformedRow as exc:
            report.malformed(line_no, str(exc))
            continue
        report.rows_parsed += 1
        for period_start, row in closed:
            yield parser, period_start, row
    if grid is not None and parser is not None:
        for period_start, row in grid.flush():
            yield parser, period_start, row
    if parser is None:
        raise DataError(f"{source or 'the CSV'} is empty: it needs a header line and data rows")


def load_csv(
    path: str | Path,
    column_map: Iterable[tuple[str, str]] = (),
    *,
    row_seconds: float = 3600.0,
) -> AirQualityTable:
    """Read a UCI Air Quality or generic CSV into an :class:`AirQualityTable` (see module doc)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist or is not a file: pass a UCI or generic CSV")
    report = LoadReport(source=str(path))
    timestamps: list[int] = []
    rows: list[np.ndarray] = []
    parser: CsvRowParser | None = None
    # The UCI file is ASCII; an undecodable byte becomes U+FFFD and its line is reported malformed.
    with path.open("r", encoding="utf-8", errors="replace", newline="") as handle:
        for row_parser, period_start, row in iter_rows(
            handle, column_map, row_seconds=row_seconds, source=str(path), report=report
        ):
            parser = row_parser
            if period_start is not None:
                timestamps.append(period_start)
            rows.append(row)
            if len(rows) > MAX_GRID_ROWS:
                raise DataError(
                    f"{path} spans more than {MAX_GRID_ROWS} periods of {row_seconds} s"
                )
    if parser is None or report.rows_parsed == 0 or not rows:
        raise DataError(
            f"{path} has no usable data row ({report.malformed_rows} malformed, "
            f"{report.empty_rows} empty; first problems: {report.to_dict()['malformed_examples'][:3]})"
        )
    values = np.stack(rows)
    report.missing_values = {
        name: int(np.sum(~np.isfinite(values[:, i]))) for i, name in enumerate(parser.columns)
    }
    if report.malformed_rows:
        log.warning(
            "%s: skipped %d malformed line(s), e.g. %s",
            path,
            report.malformed_rows,
            "; ".join(f"line {n}: {r}" for n, r in report.malformed_examples[:3]),
        )
    return AirQualityTable(
        columns=parser.columns,
        values=values,
        timestamps=np.asarray(timestamps, dtype=np.int64) if parser.timed else None,
        row_seconds=row_seconds,
        report=report,
    )


# How the UCI file writes each column: decimals after the comma (sensors are integers there).
_UCI_DECIMALS = {name: 0 for name in SENSOR_COLUMNS} | {
    "CO(GT)": 1,
    "NMHC(GT)": 0,
    "C6H6(GT)": 1,
    "NOx(GT)": 0,
    "NO2(GT)": 0,
    "T": 1,
    "RH": 1,
    "AH": 4,
}


def write_uci_csv(table: AirQualityTable, path: str | Path, *, empty_rows: int = 3) -> Path:
    """Write ``table`` in the UCI file's own format (``;``, decimal comma, ``-200``, trailing ``;;``).

    Used to replay simulated data through the real loader and to make test files; columns the
    table lacks are written as ``-200`` like the UCI file's missing ``NMHC(GT)``.
    """
    if table.timestamps is None:
        raise DataError("writing the UCI format needs timestamps (Date/Time columns)")
    path = Path(path)
    lines = [";".join(("Date", "Time") + NUMERIC_COLUMNS) + ";;"]
    columns = [
        table.column(n) if table.has(n) else np.full(len(table), np.nan) for n in NUMERIC_COLUMNS
    ]
    for i, stamp in enumerate(table.timestamps):
        moment = datetime.fromtimestamp(int(stamp), tz=timezone.utc)
        fields = [f"{moment:%d/%m/%Y}", f"{moment:%H.%M.%S}"]
        for name, column in zip(NUMERIC_COLUMNS, columns, strict=True):
            value = column[i]
            if not np.isfinite(value):
                fields.append("-200")
            else:
                fields.append(f"{value:.{_UCI_DECIMALS[name]}f}".replace(".", ","))
        lines.append(";".join(fields) + ";;")
    lines += [";" * (len(NUMERIC_COLUMNS) + 3)] * empty_rows
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\r\n".join(lines) + "\r\n", encoding="ascii")
    return path
