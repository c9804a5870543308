"""Helpers for the optimize-area tests: a real headless Chromium (CLI and DevTools protocol).

Chromium comes from Debian (``scripts/install-system-deps.sh`` installs it). If it is missing the
helpers try ``apt-get install chromium`` once (root only) and otherwise skip with the reason.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
_install_tried = False


def chromium_binary() -> str:
    """Path of Debian's chromium; installs it if possible, else skips the calling test."""
    global _install_tried
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    if not _install_tried and shutil.which("apt-get") and os.geteuid() == 0:
        _install_tried = True
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"],
            capture_output=True,
            timeout=900,
            check=False,
        )
        found = shutil.which("chromium")
        if found:
            return found
    pytest.skip("chromium is not installed and could not be installed: apt-get install chromium")


def run_chromium(url: str, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """One headless Chromium run (``--screenshot=…`` or ``--dump-dom``) with a throwaway profile."""
    with tempfile.TemporaryDirectory(
        prefix="tinyfleet-chromium-", ignore_cleanup_errors=True
    ) as profile:
        return subprocess.run(
            [chromium_binary(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, url],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def png_is_not_blank(data: bytes) -> tuple[bool, int]:
    """(not blank, number of distinct colours) of a PNG, decoded with matplotlib."""
    import io

    import matplotlib.image as mpimg
    import numpy as np

    pixels = mpimg.imread(io.BytesIO(data), format="png")
    flat = (np.asarray(pixels)[..., :3].reshape(-1, 3) * 255).astype(np.uint8)
    colours = len(np.unique(flat[:: max(1, len(flat) // 200_000)], axis=0))
    return colours > 16, colours


class DevToolsPage:
    """A page in a headless Chromium driven over the DevTools protocol (for live pages).

    ``--dump-dom`` dumps right after the load event, before a page's websocket has delivered
    anything; here a test waits for a JavaScript condition instead, in real time.
    """

    def __init__(self, connection: Any) -> None:
        self._ws = connection
        self._next_id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        request_id = self._next_id
        self._ws.send(json.dumps({"id": request_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._ws.recv(timeout=30))
            if message.get("id") == request_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.evaluate(expression):
                return True
            time.sleep(0.2)
        return False

    def screenshot(self) -> bytes:
        return base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])


@contextlib.contextmanager
def devtools_page(url: str, width: int = 1280, height: int = 900) -> Iterator[DevToolsPage]:
    """Open ``url`` in a fresh headless Chromium and yield a :class:`DevToolsPage`."""
    from websockets.sync.client import connect

    with tempfile.TemporaryDirectory(
        prefix="tinyfleet-chromium-", ignore_cleanup_errors=True
    ) as profile:
        process = subprocess.Popen(
            [
                chromium_binary(),
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + 30
            while not port_file.is_file() or not port_file.read_text().strip():
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("chromium did not open its DevTools port")
                time.sleep(0.1)
            port = int(port_file.read_text().split()[0])
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
                targets = json.load(r)
            page = next(t for t in targets if t.get("type") == "page")
            with connect(page["webSocketDebuggerUrl"], max_size=None) as ws:
                driver = DevToolsPage(ws)
                driver.call("Page.enable")
                driver.call("Page.navigate", url=url)
                yield driver
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def small_vibration_folder(root: Path, sample_rate: float = 1600.0, seed: int = 0) -> Path:
    """A tiny vibration dataset folder (``normal/`` + two fault classes, ``.npy`` in g).

    About 70 s of simulated 3-axis data at ``sample_rate`` Hz: enough windows for training and
    calibration, an evaluation set with both classes, and ~10x less front-end work than the
    simulator's quick preset, so tune and report tests train in seconds. Pass
    ``sample_rate`` as ``TrainOptions.sample_rate`` (.npy files do not carry it).
    """
    import numpy as np

    from device_sim.sources.vibration_sim import SimulatorConfig, simulate_recording

    config = SimulatorConfig(sample_rate=sample_rate)
    layout = {
        "normal": [dict(seconds=30.0), dict(seconds=30.0)],
        "outer_race": [dict(seconds=6.0, kind="outer_race", severity=1.0)],
        "imbalance": [dict(seconds=6.0, kind="imbalance", severity=1.0)],
    }
    for index, (label, recordings) in enumerate(layout.items()):
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        for k, spec in enumerate(recordings):
            seconds = spec.pop("seconds")
            samples = simulate_recording(
                seconds, seed=seed * 1000 + index * 10 + k, config=config, **spec
            )
            np.save(folder / f"{label}_{k}.npy", np.asarray(samples, dtype=np.float32))
    return root
