"""The tensor arena a model needs, measured in the real TFLM interpreter by bisection.

How TFLM fails when the arena is too small (tflite-micro's Python runtime, checked by hand): for most
sizes ``Interpreter.from_bytes(model, arena_size=n)`` raises ``RuntimeError("TFLM failed to allocate
tensors")`` after printing e.g. ``Failed to resize buffer. Requested: 1280, available 1120``; for
very small sizes (the allocator's own tail structures do not fit) the process dies with SIGSEGV.
So every probe runs in a separate worker process: a crash is recorded as "does not fit" and the
worker is restarted, and the measuring process never dies.

A size "works" when the interpreter allocates **and** ``Invoke()`` on a random int8 input succeeds
(kernels request scratch buffers during Prepare, so allocation alone is not the whole story).
The result is the smallest multiple of ``step_bytes`` (16: TFLM aligns tensor buffers to 16 bytes)
that works, so one step less provably does not.

Why a margin on top: the measurement runs TFLM's *reference* kernels. Optimised kernels on the
device (CMSIS-NN on Cortex-M, ESP-NN on ESP32-S3) ask for extra scratch memory — im2col rows for
convolutions, a per-channel accumulator for average pooling — that the reference kernels do not.
:func:`optimized_kernel_scratch_bytes` sizes the largest such buffer from the model's layers using
CMSIS-NN's own buffer-size formulas (DSP extension: M4/M7), and 16 bytes cover an arena array that is
not itself 16-byte aligned. The host's 64-bit TFLM bookkeeping (pointers in TfLiteEvalTensor,
node and allocator structs) is larger than on a 32-bit MCU, so the persistent part measured here is
an upper bound of what the device needs; no allowance is added for it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device_sim import console
from device_sim.model_graph import ModelGraph, read_model
from firmware_bridge.errors import FirmwareError

log = logging.getLogger(__name__)

STEP_BYTES = 16
MAX_ARENA_BYTES = 64 * 1024 * 1024  # no micromodel needs more; beyond this something is wrong
ALIGNMENT_SLACK_BYTES = 16
_PROBE_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class ArenaMeasurement:
    """Smallest arena (bytes) that allocates and invokes in TFLM, and the margin to add on devices.

    ``arena_bytes`` is None when TFLM is not installed here (e.g. an ARM host): then the arena is
    *not measured* rather than guessed, and ``reason`` says why.
    """

    arena_bytes: int | None
    margin_bytes: int | None
    step_bytes: int = STEP_BYTES
    probes: int = 0
    reason: str = ""
    # TFLM's own split of the measured arena (RecordingMicroAllocator): the planned, reused
    # activation buffers (head) and the persistent structures and op data (tail).
    head_bytes: int | None = None
    tail_bytes: int | None = None

    @property
    def recommended_bytes(self) -> int | None:
        """What ``kArenaSize`` should be on the device: measured + margin, a multiple of 16."""
        if self.arena_bytes is None or self.margin_bytes is None:
            return None
        return _align_up(self.arena_bytes + self.margin_bytes, self.step_bytes)


def tflm_available() -> bool:
    """True when tflite-micro's Python runtime is importable (x86_64 wheels only)."""
    try:
        return importlib.util.find_spec("tflite_micro") is not None
    except (ImportError, ValueError):
        return False


def _align_up(n: int, step: int) -> int:
    return -(-n // step) * step


def optimized_kernel_scratch_bytes(graph: ModelGraph) -> int:
    """Largest scratch buffer CMSIS-NN (DSP) kernels request for one layer of ``graph``, in bytes.

    Formulas from CMSIS-NN's ``*_get_buffer_size`` functions: convolution im2col holds two rows of
    ``kernel_h × kernel_w × in_channels`` int16 values (0 for the 1×1 fast path); the 3×3
    depthwise fast path one row of ``kernel_h × kernel_w × channels`` int16; average pooling one
    int32 accumulator per channel. Scratch buffers live only while their layer runs; taking the
    largest one, added on top, is an upper bound.
    """
    largest = 0
    for operator in graph.operators:
        need = 0
        if operator.op in ("CONV_2D", "DEPTHWISE_CONV_2D") and len(operator.inputs) >= 2:
            filters = graph.tensors[operator.inputs[1]].shape
            data = graph.tensors[operator.inputs[0]].shape
            if len(filters) == 4 and len(data) == 4:
                kernel_h, kernel_w = filters[1], filters[2]
                channels = data[3]
                if operator.op == "CONV_2D" and (kernel_h, kernel_w) != (1, 1):
                    need = 2 * kernel_h * kernel_w * channels * 2
                elif operator.op == "DEPTHWISE_CONV_2D":
                    need = kernel_h * kernel_w * channels * 2
        elif operator.op == "AVERAGE_POOL_2D" and operator.inputs:
            shape = graph.tensors[operator.inputs[0]].shape
            need = 4 * (shape[-1] if shape else 1)
        largest = max(largest, need)
    return largest


def margin_bytes(graph: ModelGraph) -> int:
    """Bytes to add to the host measurement on a device; see the module docstring for why."""
    return _align_up(optimized_kernel_scratch_bytes(graph) + ALIGNMENT_SLACK_BYTES, STEP_BYTES)


class _Prober:
    """A worker process that answers "does the model run in an arena of n bytes?"."""

    def __init__(self, model_path: Path, seed: int) -> None:
        self.model_path = model_path
        self.seed = seed
        self.probes = 0
        self.on_probe = lambda: None  # progress hook
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self._proc: subprocess.Popen[str] | None = None

    def _start(self) -> subprocess.Popen[str]:
        # The worker imports this package: make it importable however the parent was started.
        root = str(Path(__file__).resolve().parents[1])
        path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path}
        return subprocess.Popen(
            [sys.executable, "-m", "firmware_bridge.arena", str(self.model_path), str(self.seed)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=env,
        )

    def fits(self, arena_size: int) -> bool:
        self.probes += 1
        self.on_probe()
        if self._proc is None or self._proc.poll() is not None:
            self._proc = self._start()
        assert self._proc.stdin is not None and self._proc.stdout is not None
        try:
            self._proc.stdin.write(f"{arena_size}\n")
            self._proc.stdin.flush()
            answer = self._proc.stdout.readline().strip()
        except BrokenPipeError:
            answer = ""
        if not answer:  # the worker died: TFLM crashes when its own structures do not fit
            self._proc.wait(timeout=_PROBE_TIMEOUT_S)
            log.debug("TFLM crashed with a %d-byte arena (counted as too small)", arena_size)
            self._proc = None
            return False
        if answer.startswith("error"):
            raise FirmwareError(f"TFLM cannot run the model: {answer[6:]}")
        return answer == "ok"

    def allocations(self, arena_size: int) -> tuple[int | None, int | None]:
        """(head, tail) bytes TFLM reports for a run with ``arena_size`` (None if unreadable)."""
        if self._proc is None or self._proc.poll() is not None:
            self._proc = self._start()
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._stderr.seek(0, os.SEEK_END)
        start = self._stderr.tell()
        self._proc.stdin.write(f"report {arena_size}\n")
        self._proc.stdin.flush()
        if self._proc.stdout.readline().strip() != "ok":
            return None, None
        self._stderr.seek(start)
        text = self._stderr.read().decode(errors="replace")
        head = re.search(r"Arena allocation head (\d+) bytes", text)
        tail = re.search(r"Arena allocation tail (\d+) bytes", text)
        return (int(head.group(1)) if head else None, int(tail.group(1)) if tail else None)

    def stderr_tail(self, limit: int = 600) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-limit:]

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._stderr.close()


def fits_in_arena(model_path: Path, arena_size: int, *, seed: int = 0) -> bool:
    """One probe: does the model allocate and invoke in TFLM with ``arena_size`` bytes?"""
    prober = _Prober(Path(model_path), seed)
    try:
        return prober.fits(arena_size)
    finally:
        prober.close()


def measure_arena(
    model_path: Path, *, step_bytes: int = STEP_BYTES, seed: int = 0
) -> ArenaMeasurement:
    """Bisect the smallest working arena of the ``.tflite`` at ``model_path`` in TFLM.

    Without tflite-micro installed the result says "not measured" (``arena_bytes=None``) and a
    warning is logged: a guessed arena would either waste RAM or crash the device.
    """
    model_path = Path(model_path)
    graph = read_model(model_path.read_bytes())
    margin = margin_bytes(graph)
    if not tflm_available():
        reason = (
            "tflite-micro is not installed (its wheels exist for x86_64 Linux only), so the arena "
            "was not measured: run `tinyfleet export` on an x86_64 host with `pip install "
            "tflite-micro`, or find on the device the smallest arena with which AllocateTensors() "
            "and Invoke() succeed (MicroInterpreter::arena_used_bytes() undercounts it)"
        )
        log.warning(reason)
        return ArenaMeasurement(arena_bytes=None, margin_bytes=margin, reason=reason)
    prober = _Prober(model_path, seed)
    with console.progress(None, "measuring the TFLM arena", "probes") as bar:
        prober.on_probe = bar.update
        return _bisect(prober, graph, model_path, margin, step_bytes)


def _bisect(
    prober: _Prober, graph: ModelGraph, model_path: Path, margin: int, step_bytes: int
) -> ArenaMeasurement:
    """Double the arena until the model runs, then halve the gap down to ``step_bytes``."""
    try:
        activations = sum(t.size_bytes for t in graph.tensors if not t.is_constant)
        high = _align_up(activations + 4096, step_bytes)
        while not prober.fits(high):
            if high >= MAX_ARENA_BYTES:
                raise FirmwareError(
                    f"the model does not run in TFLM even with a {MAX_ARENA_BYTES}-byte arena; "
                    f"TFLM said: {prober.stderr_tail()}"
                )
            high = min(high * 2, MAX_ARENA_BYTES)
        low = 0  # known not to work (or not probed: zero bytes cannot hold anything)
        while high - low > step_bytes:
            middle = _align_up((low + high) // 2, step_bytes)
            if middle >= high:
                middle = high - step_bytes
            if prober.fits(middle):
                high = middle
            else:
                low = middle
        head, tail = prober.allocations(high)
        log.info(
            "TFLM arena: %d bytes (activations %s + persistent %s) +%d margin, %d probes",
            high,
            head,
            tail,
            margin,
            prober.probes,
        )
        return ArenaMeasurement(
            arena_bytes=high,
            margin_bytes=margin,
            step_bytes=step_bytes,
            probes=prober.probes,
            head_bytes=head,
            tail_bytes=tail,
        )
    finally:
        prober.close()


def _serve(model_path: str, seed: int) -> None:
    """Worker loop: read ``<size>`` or ``report <size>`` lines on stdin, answer ``ok``/``no``/
    ``error <message>``; ``report`` also has TFLM print its allocation breakdown to stderr."""
    from tflite_micro.python.tflite_micro import runtime

    data = Path(model_path).read_bytes()
    rng = np.random.default_rng(seed)
    for line in sys.stdin:
        command, _, argument = line.strip().rpartition(" ")
        size = int(argument)
        try:
            interpreter = runtime.Interpreter.from_bytes(data, arena_size=size)
        except RuntimeError:
            print("no", flush=True)
            continue
        except Exception as exc:  # unsupported op, bad model: not an arena question
            print(f"error {type(exc).__name__}: {exc}", flush=True)
            continue
        try:
            detail = interpreter.get_input_details(0)
            dtype = np.dtype(detail["dtype"])
            info = np.iinfo(dtype) if dtype.kind in "iu" else None
            shape = tuple(int(n) for n in detail["shape"])
            if info is not None:
                value = rng.integers(info.min, info.max + 1, size=shape, dtype=dtype)
            else:
                value = rng.standard_normal(shape).astype(dtype)
            interpreter.set_input(value, 0)
            interpreter.invoke()
            interpreter.get_output(0)
        except RuntimeError:
            print("no", flush=True)
            continue
        if command == "report":
            sys.stderr.flush()
            interpreter.print_allocations()  # TFLM writes its breakdown to stderr
        print("ok", flush=True)


if __name__ == "__main__":
    _serve(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0)
