"""Build an exported folder with its own Makefile against real TFLM sources, and run its self-test.

Where the TFLM tree comes from: ``$TINYFLEET_THIRD_PARTY`` (a folder holding ``tflite-micro/``
with its downloads in place, laid out like ``shared/third_party`` — see its README), else
``../shared/third_party`` beside the repository. The library objects are compiled once per source
tree and target into ``~/.cache/tinyfleet/tflm-<sha256 of the sources and build rules>/<target>``
(``$XDG_CACHE_HOME`` is honoured) and shared by every exported project: a second project costs only
its own few files and the kernels the first did not need.

Targets: ``host`` (gcc/g++, the program runs here) and ``cortex-m4`` (Debian's
``gcc-arm-none-eabi`` + newlib, CMSIS-NN kernels, an image for the MPS2 AN386 that
``qemu-system-arm -M mps2-an386`` runs with semihosting).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from firmware_bridge import qemu_insn
from firmware_bridge.errors import FirmwareError
from firmware_bridge.makefile import makefile_rules_digest
from firmware_bridge.selftest import SelftestResult, parse_selftest

log = logging.getLogger(__name__)

THIRD_PARTY_ENV = "TINYFLEET_THIRD_PARTY"
BUILD_TARGETS = ("host", "cortex-m4")
_TOOLS = {
    "host": ("gcc", "g++", "make", "size"),
    "cortex-m4": ("arm-none-eabi-gcc", "arm-none-eabi-g++", "make", "arm-none-eabi-size"),
}
_INSTALL_HINT = {
    "host": "apt-get install gcc g++ make",
    "cortex-m4": "apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi "
    "libstdc++-arm-none-eabi-newlib (scripts/install-system-deps.sh does this)",
}
QEMU = "qemu-system-arm"
# Subfolders of the TFLM tree whose contents decide what the library objects are.
_HASHED = (
    "tensorflow",
    "tensorflow/lite/micro/tools/make/downloads/flatbuffers/include",
    "tensorflow/lite/micro/tools/make/downloads/gemmlowp/fixedpoint",
    "tensorflow/lite/micro/tools/make/downloads/ruy/ruy/profiler",
    "tensorflow/lite/micro/tools/make/downloads/cmsis_nn",
    "tensorflow/lite/micro/tools/make/downloads/cmsis/CMSIS/Core/Include",
)


@dataclass(frozen=True)
class LinkedProgram:
    """A linked program and its section sizes in bytes, as ``size`` (Berkeley format) reports.

    ``text`` holds code and constants (the model array, front-end tables) and goes to flash with
    ``data``'s initial values; ``data`` + ``bss`` are static RAM (tensor arena, front-end buffers,
    TFLM's objects). Stack and heap come on top.
    """

    path: Path
    target: str
    text_bytes: int
    data_bytes: int
    bss_bytes: int
    build_seconds: float

    @property
    def flash_bytes(self) -> int:
        return self.text_bytes + self.data_bytes

    @property
    def static_ram_bytes(self) -> int:
        return self.data_bytes + self.bss_bytes

    def as_dict(self) -> dict[str, int | float | str]:
        return {
            "target": self.target,
            "text_bytes": self.text_bytes,
            "data_bytes": self.data_bytes,
            "bss_bytes": self.bss_bytes,
            "flash_bytes": self.flash_bytes,
            "static_ram_bytes": self.static_ram_bytes,
            "build_seconds": round(self.build_seconds, 1),
        }


def third_party_dir() -> Path | None:
    """The third-party folder holding ``tflite-micro/``, or None when there is none."""
    configured = os.environ.get(THIRD_PARTY_ENV)
    candidates = [Path(configured)] if configured else []
    candidates.append(Path(__file__).resolve().parents[2] / "shared" / "third_party")
    for candidate in candidates:
        if (candidate / "tflite-micro" / "tensorflow" / "lite" / "micro").is_dir():
            return candidate
    return None


def tflm_root() -> Path:
    """The TFLM tree to build against; raises with what to do when there is none."""
    folder = third_party_dir()
    if folder is None:
        raise FirmwareError(
            f"no TFLM sources found: set {THIRD_PARTY_ENV} to a folder holding tflite-micro/ "
            "(with its downloads: flatbuffers, gemmlowp, cmsis, cmsis_nn), or place it at "
            "../shared/third_party beside the repository"
        )
    return folder / "tflite-micro"


def missing_tools(target: str) -> str | None:
    """Why ``target`` cannot be built here (a missing tool and how to install it), or None."""
    if target not in BUILD_TARGETS:
        raise FirmwareError(f"unknown build target {target!r}; choose {', '.join(BUILD_TARGETS)}")
    missing = [tool for tool in _TOOLS[target] if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} not installed: {_INSTALL_HINT[target]}"
    return None


@functools.cache
def source_digest(root: Path) -> str:
    """sha256 over the TFLM sources the build reads and the Makefile's rules (16 hex digits)."""
    digest = hashlib.sha256(makefile_rules_digest().encode())
    for sub in _HASHED:
        base = root / sub
        for path in sorted(base.rglob("*")):
            if path.is_file() and path.suffix in (".h", ".hpp", ".c", ".cc", ".cpp"):
                digest.update(str(path.relative_to(root)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tinyfleet"


def tflm_build_dir(root: Path, target: str) -> Path:
    """Where the library objects for ``target`` live (shared by all exported projects)."""
    return cache_dir() / f"tflm-{source_digest(root)}" / target


def _make(folder: Path, target: str, goal: str, jobs: int) -> None:
    root = tflm_root()
    command = [
        "make",
        "-C",
        str(folder),
        f"-j{jobs}",
        f"TFLM_ROOT={root}",
        f"TARGET={target}",
        f"TFLM_BUILD={tflm_build_dir(root, target)}",
        goal,
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise FirmwareError(
            f"building {folder} for {target} failed ({' '.join(command)}):\n"
            f"{(result.stdout + result.stderr)[-4000:]}"
        )


def section_sizes(program: Path, target: str) -> tuple[int, int, int]:
    """(text, data, bss) bytes of a linked program, from ``size``/``arm-none-eabi-size``."""
    tool = "arm-none-eabi-size" if target == "cortex-m4" else "size"
    result = subprocess.run([tool, str(program)], capture_output=True, text=True, check=True)
    text, data, bss = (int(v) for v in result.stdout.splitlines()[1].split()[:3])
    return text, data, bss


def program_path(folder: Path, target: str, app: str, selftest: bool = False) -> Path:
    name = "selftest" if selftest else app
    return folder / "build" / target / (f"{name}.elf" if target == "cortex-m4" else name)


def build(folder: Path, target: str, *, app: str, selftest: bool = False, jobs: int = 2):
    """Build the exported ``folder`` for ``target`` (the program, or its self-test) and measure it."""
    reason = missing_tools(target)
    if reason:
        raise FirmwareError(f"cannot build for {target}: {reason}")
    started = time.perf_counter()
    _make(Path(folder), target, "selftest" if selftest else "all", jobs)
    path = program_path(Path(folder), target, app, selftest)
    text, data, bss = section_sizes(path, target)
    seconds = time.perf_counter() - started
    log.info("linked %s: text %d, data %d, bss %d bytes (%.1f s)", path, text, data, bss, seconds)
    return LinkedProgram(path, target, text, data, bss, seconds)


def run_selftest(
    program: LinkedProgram,
    *,
    timeout_s: float = 300.0,
    count_instructions: bool = False,
    span: tuple[str, str] = qemu_insn.INVOKE_SPAN,
) -> list[SelftestResult]:
    """Run a self-test program (natively, or in QEMU's MPS2 AN386 for ``cortex-m4``).

    ``count_instructions`` (``cortex-m4``): QEMU also counts the instructions retired per
    inference (:mod:`firmware_bridge.qemu_insn`), set as ``SelftestResult.instructions``: by
    default over ``Invoke()``; ``span`` = (start function, stop function) counts another stretch,
    e.g. ``("tinyfleet_frontend_push", "tinyfleet_on_input")`` for a streaming front end."""
    log_file = None
    if program.target == "cortex-m4":
        if shutil.which(QEMU) is None:
            raise FirmwareError(f"{QEMU} is not installed: apt-get install qemu-system-arm")
        command = [
            QEMU,
            "-M",
            "mps2-an386",
            "-nographic",
            "-monitor",
            "none",
            "-serial",
            "none",
            "-semihosting-config",
            "enable=on,target=native",
            "-icount",
            "shift=0",  # one instruction per virtual ns: SysTick then counts instructions
            "-kernel",
            str(program.path),
        ]
        if count_instructions:
            log_file = program.path.with_suffix(".insn.log")
            log_file.unlink(missing_ok=True)
            command += qemu_insn.qemu_arguments(
                qemu_insn.plugin_path(cache_dir()), program.path, log_file, span
            )
    else:
        command = [str(program.path)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise FirmwareError(f"the self-test did not finish in {timeout_s:.0f} s") from exc
    if log_file is not None and "Could not load plugin" in result.stderr:
        raise qemu_insn.PluginNotLoaded(
            f"QEMU could not load the instruction-count plugin: {result.stderr.strip()[-500:]}"
        )
    if result.returncode != 0:
        raise FirmwareError(
            f"the self-test exited with {result.returncode}:\n{(result.stdout + result.stderr)[-3000:]}"
        )
    results = parse_selftest(result.stdout)
    if log_file is not None:
        counts = qemu_insn.instructions_per_span(log_file.read_text())
        if len(counts) != len(results):
            raise FirmwareError(f"{len(counts)} instruction counts for {len(results)} inferences")
        results = [
            dataclasses.replace(r, instructions=n) for r, n in zip(results, counts, strict=True)
        ]
    return results
