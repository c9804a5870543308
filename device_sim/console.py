"""How long steps talk to the person at the terminal: progress bars, plain lines, quiet native logs.

Why: a 5-minute build should say how far it has got, and TensorFlow's C++ logs, converter chatter
and ``INFO`` records should not bury the answer. The command line decides once, per process, how
chatty to be (:func:`configure`); library code only says what it is doing:

* :func:`progress` — a step with a known number of units (epochs, trials, windows, seconds). With
  a terminal on stderr it draws a tqdm bar that disappears when done; otherwise (a pipe, a CI log,
  ``--json``) it prints a few plain lines: the start, about every 25 % or 15 s, and the end.
* :func:`native_output_quiet` — runs a block (importing TensorFlow, converting a model) with the
  process's stderr file descriptor captured, then prints back what is not known native chatter
  (absl/TF C++ log lines, the converter's settings dump). Python exceptions still propagate and
  show everything captured, so nothing that explains a failure is lost.

The settings travel in environment variables so worker processes (arena probes, fleet shards)
inherit them: ``TINYFLEET_PROGRESS`` = ``bar`` | ``lines`` | ``off`` and ``TINYFLEET_NATIVE_LOGS``
= ``show`` | ``quiet``. Without them (tinyfleet used as a library) progress prints plain lines only
when asked through :func:`configure`, and native output is left alone.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

PROGRESS_ENV = "TINYFLEET_PROGRESS"
NATIVE_LOGS_ENV = "TINYFLEET_NATIVE_LOGS"
MODES = ("bar", "lines", "off")

# Native chatter nobody acts on: absl/glog-style records (I/W/E, not F = fatal), absl's preamble,
# the CPU-feature line's continuation, the TFLite converter's settings dump, TF's Python
# UserWarning about quantized input statistics (two lines).
_NATIVE_NOISE = re.compile(
    r"^([IWE]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\]"
    r"|WARNING: All log messages before absl::InitializeLog"
    r"|To enable the following instructions:"
    r"|fully_quantize: \d"
    r"|.*site-packages/tensorflow/.*Warning:"
    r"|\s+warnings\.warn\("
    r"|INFO: Created TensorFlow Lite"
    r")"
)


def configure(mode: str | None = None, *, native_logs: bool | None = None) -> None:
    """Set this process's (and its children's) progress mode and native-log policy."""
    if mode is not None:
        if mode not in MODES:
            raise ValueError(f"progress mode {mode!r}: choose one of {MODES}")
        os.environ[PROGRESS_ENV] = mode
    if native_logs is not None:
        os.environ[NATIVE_LOGS_ENV] = "show" if native_logs else "quiet"


def mode_for(stream: TextIO, as_json: bool, quiet: bool) -> str:
    """The mode a command should use: bars only on a terminal and never with ``--json``."""
    if quiet:
        return "off"
    if as_json or not stream.isatty():
        return "lines"
    try:
        import tqdm  # noqa: F401
    except ImportError:  # the device extra brings tqdm; a bare install prints lines instead
        return "lines"
    return "bar"


_terminal: TextIO | None = None  # the real stderr while native_output_quiet() captures fd 2


def _stream() -> TextIO:
    return _terminal or sys.stderr


def current_mode() -> str:
    mode = os.environ.get(PROGRESS_ENV, "off")
    return mode if mode in MODES else "off"


def say(message: str) -> None:
    """One line of the story a command tells (stderr; stdout stays for results and ``--json``)."""
    if current_mode() != "off":
        _stream().write(message.rstrip("\n") + "\n")
        _stream().flush()


class Progress:
    """A step of ``total`` units; ``update(n)`` after each, ``note(text)`` for a short status."""

    LINE_EVERY_S = 15.0
    LINE_EVERY_FRACTION = 0.25

    def __init__(self, total: float | None, desc: str, unit: str = "it") -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.done = 0.0
        self.status = ""
        self.mode = current_mode()
        self.started = time.monotonic()
        self._bar: Any = None
        self._last_line = self.started
        self._last_fraction = 0.0
        if self.mode == "bar":
            from tqdm import tqdm

            self._bar = tqdm(
                total=total, desc=desc, unit=unit, leave=False, file=_stream(), dynamic_ncols=True
            )
        elif self.mode == "lines":
            size = f" ({_amount(total)} {unit})" if total else ""
            self._line(f"{desc}{size} …")

    def update(self, n: float = 1.0) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.mode == "lines":
            now = time.monotonic()
            fraction = self.done / self.total if self.total else 0.0
            if (
                now - self._last_line >= self.LINE_EVERY_S
                or fraction - self._last_fraction >= self.LINE_EVERY_FRACTION
            ) and (not self.total or self.done < self.total):
                self._last_line, self._last_fraction = now, fraction
                of = f"/{_amount(self.total)}" if self.total else ""
                status = f", {self.status}" if self.status else ""
                self._line(f"{self.desc}: {_amount(self.done)}{of} {self.unit}{status}")

    def note(self, status: str) -> None:
        """A short status shown beside the bar (e.g. ``loss 0.42``) and in plain lines."""
        self.status = status
        if self._bar is not None:
            self._bar.set_postfix_str(status, refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.mode == "lines":
            status = f", {self.status}" if self.status else ""
            seconds = time.monotonic() - self.started
            self._line(
                f"{self.desc}: done, {_amount(self.done)} {self.unit} in {seconds:.0f} s{status}"
            )
        self.mode = "closed"

    def _line(self, text: str) -> None:
        _stream().write("  " + text + "\n")
        _stream().flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _amount(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def progress(total: float | None, desc: str, unit: str = "it") -> Progress:
    """``with progress(epochs, "training kws", "epoch") as bar: … bar.update()``."""
    return Progress(total, desc, unit)


def track(items: Iterable[Any], desc: str, unit: str = "it", total: int | None = None) -> Iterator:
    """Iterate ``items`` with a progress step (``total`` defaults to ``len(items)``)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(total, desc, unit) as bar:
        for item in items:
            yield item
            bar.update()


@contextlib.contextmanager
def ticking(
    seconds: float | None, desc: str, status: Any = None, interval_s: float = 1.0
) -> Iterator[Progress]:
    """A progress step over wall-clock ``seconds`` (fleet runs), ticked by a background thread;
    ``status()`` (optional) gives the text shown beside it, e.g. messages received so far."""
    import threading

    stop = threading.Event()
    with Progress(seconds, desc, "s") as bar:

        def tick() -> None:
            last = time.monotonic()
            while not stop.wait(interval_s):
                now = time.monotonic()
                if status is not None:
                    bar.note(str(status()))
                bar.update(min(now - last, max(0.0, (seconds or float("inf")) - bar.done)))
                last = now

        thread = threading.Thread(target=tick, name="tinyfleet-progress", daemon=True)
        thread.start()
        try:
            yield bar
        finally:
            stop.set()
            thread.join(timeout=2)
            if status is not None:
                bar.note(str(status()))


def native_logs_quiet() -> bool:
    return os.environ.get(NATIVE_LOGS_ENV) == "quiet"


@contextlib.contextmanager
def native_output_quiet() -> Iterator[None]:
    """Capture stderr at the file-descriptor level (C++ logs bypass Python) while quiet is on.

    On a normal exit, lines that are not known chatter are written back; on an exception
    everything captured is, so the reason for a failure is never swallowed.
    """
    global _terminal
    if not native_logs_quiet() or _terminal is not None:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        # progress drawn meanwhile (converter calibration) still reaches the person
        _terminal = os.fdopen(os.dup(saved), "w", buffering=1)
        failed = False
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            sys.stderr.flush()
            _terminal.close()
            _terminal = None
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", "replace")
            kept = text if failed else "".join(_kept_lines(text))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


def _kept_lines(text: str) -> Iterator[str]:
    for line in text.splitlines(keepends=True):
        if not _NATIVE_NOISE.match(line):
            yield line
