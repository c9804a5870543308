"""A real PostgreSQL server for tests, started from the Debian package's binaries.

``initdb`` in a fresh temporary folder, ``postgres`` on its own loopback port with trust
authentication (only this test's processes can reach 127.0.0.1:PORT in practice) and its socket in
that folder. PostgreSQL refuses to run as root, so under root the folder is handed to ``nobody``
and the server runs through ``setpriv``. Skips, with the reason, when the binaries are missing
(CI installs ``postgresql`` via scripts/install-system-deps.sh).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from ops.broker import free_port

USER = "tinyfleet"


def postgres_bin_dir() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin holding initdb and postgres."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
    )
    for path in reversed(candidates):
        if (Path(path) / "initdb").is_file() and (Path(path) / "postgres").is_file():
            return Path(path)
    return None


class PostgresServer:
    """``with PostgresServer() as pg: pg.url`` — a throw-away cluster; removed on exit."""

    def __init__(self) -> None:
        self.bin_dir = postgres_bin_dir()
        if self.bin_dir is None:
            pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
        self.root = Path(tempfile.mkdtemp(prefix="tinyfleet-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            if shutil.which("setpriv") is None:
                pytest.skip("running as root and setpriv is missing: postgres refuses root")
            shutil.chown(self.root, "nobody", "nogroup")
            # setpriv execs (runuser would stay the parent, and a SIGKILL would miss postgres)
            self._as_user = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]

    @property
    def url(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/postgres"

    def database_url(self, name: str) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{name}"

    def start(self) -> PostgresServer:
        if not self.data.exists():
            subprocess.run(
                [
                    *self._as_user,
                    str(self.bin_dir / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    USER,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                ],
                check=True,
                capture_output=True,
                timeout=120,
            )
        self.process = subprocess.Popen(
            [
                *self._as_user,
                str(self.bin_dir / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-h",
                "127.0.0.1",
                "-k",
                str(self.root),
                "-c",
                "fsync=off",  # a test cluster: speed over durability across power cuts
                "-c",
                "max_connections=40",
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(self.root / "server.log", "ab"),  # noqa: SIM115 - owned by the process
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready = subprocess.run(
                [str(self.bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                capture_output=True,
            )
            if ready.returncode == 0:
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"postgres did not start: {self.log()[-2000:]}")

    def log(self) -> str:
        path = self.root / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def kill(self) -> None:
        """SIGKILL the server (a crash): committed transactions must survive a restart."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=30)
            self.process = None
            # postgres' children notice the postmaster is gone and exit; wait for the port
            time.sleep(1.0)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()  # smart shutdown
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
            self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()
