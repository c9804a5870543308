"""Run a generated C front end on the host: compile it with gcc and feed it windows.

This is how the C port is checked against the Python front end (tests, ``benchmarks/firmware.py``):
a tiny driver reads float32 windows from a file, calls ``tinyfleet_frontend`` and writes the status
and features back. Compiled with ``-std=c99 -Wall -Wextra -Werror -pedantic -O2``: the same strict
C99 an MCU toolchain would get.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np

from firmware_bridge.errors import FirmwareError
from firmware_bridge.frontend_c import FrontEndC

C_FLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic")


def frontend_driver(window_floats: int, features: int) -> str:
    """A C program: read float32 windows from argv[1], write status + features to argv[2]."""
    return f"""\
#include <stdio.h>
#include "tinyfleet_frontend.h"

static float window[{window_floats}];
static float features[{features}];

int main(int argc, char **argv)
{{
    FILE *in, *out;
    if (argc != 3) return 2;
    in = fopen(argv[1], "rb");
    out = fopen(argv[2], "wb");
    if (!in || !out) return 2;
    while (fread(window, sizeof(float), {window_floats}, in) == {window_floats}) {{
        int status = tinyfleet_frontend(window, features);
        fwrite(&status, sizeof(int), 1, out);
        fwrite(features, sizeof(float), {features}, out);
    }}
    fclose(in);
    fclose(out);
    return 0;
}}
"""


def compile_c(args: list[str], cwd: Path) -> None:
    """Run gcc with ``args`` in ``cwd``; raise :class:`FirmwareError` with its diagnostics."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise FirmwareError("gcc is not installed: apt-get install gcc (make setup does this)")
    result = subprocess.run([gcc, *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise FirmwareError(f"gcc {' '.join(args)} failed:\n{result.stderr}")


def run_frontend(
    frontend: FrontEndC, windows: np.ndarray, work: Path
) -> tuple[np.ndarray, np.ndarray]:
    """Compile ``frontend`` in ``work`` and run it on ``windows`` ``(n, samples[, channels])``.

    Returns (status per window, features per window as float32 ``(n, features)``).
    """
    work.mkdir(parents=True, exist_ok=True)
    for name, text in frontend.files().items():
        (work / name).write_text(text)
    windows = np.ascontiguousarray(windows, dtype=np.float32)
    per_window = int(np.prod(windows.shape[1:]))
    if per_window != frontend.window_samples * frontend.channels:
        raise FirmwareError(
            f"windows hold {per_window} values, the front end reads "
            f"{frontend.window_samples} x {frontend.channels}"
        )
    (work / "driver.c").write_text(frontend_driver(per_window, frontend.features))
    compile_c([*C_FLAGS, "-O2", "driver.c", "tinyfleet_frontend.c", "-lm", "-o", "frontend"], work)
    windows.tofile(work / "windows.bin")
    subprocess.run(["./frontend", "windows.bin", "features.bin"], cwd=work, check=True)
    raw = np.fromfile(work / "features.bin", dtype=np.uint8)
    record = 4 + 4 * frontend.features
    if raw.size != record * len(windows):
        raise FirmwareError("the C front end did not answer every window")
    rows = raw.reshape(len(windows), record)
    status = rows[:, :4].copy().view(np.int32)[:, 0]
    values = rows[:, 4:].copy().view(np.float32)
    return status, values
