"""A local MQTT broker for the simulator, tests and demos: a real mosquitto process on loopback.

Why mosquitto and not an in-process broker: it is what users run on a Raspberry Pi gateway, it speaks
MQTT v5 (shared subscriptions, message expiry, session expiry), and it can be SIGKILLed and restarted
with its persistence file, which is how the reliability tests prove that nothing is lost.

Only when the ``mosquitto`` binary is absent does :func:`start_broker` fall back to an in-process
``amqtt`` broker (MQTT 3.1.1 only, no persistence across restarts), with a logged warning.

The broker always listens on 127.0.0.1: this module never opens a port on another interface.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from device_sim.errors import BrokerError

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
CONFIG_FILE = "mosquitto.conf"
LOG_FILE = "mosquitto.log"
PERSISTENCE_FILE = "mosquitto.db"
# Per-client queue limit for QoS 1/2 messages held for an offline or slow persistent session.
# Mosquitto's default (1000) silently drops the rest, which would break "nothing is lost" for a
# subscriber that is away for a minute while a fleet publishes; 10 million is far above what a
# simulated fleet produces and still bounded.
MAX_QUEUED_MESSAGES = 10_000_000


def free_port(host: str = HOST) -> int:
    """A TCP port on ``host`` that is free right now (the OS picks it; a small race is possible)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_accepts(host: str, port: int, timeout: float = 0.2) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def mosquitto_binary() -> str | None:
    """Path of the mosquitto executable (Debian installs it in /usr/sbin, often not on PATH)."""
    found = shutil.which("mosquitto")
    if found:
        return found
    for candidate in (
        "/usr/sbin/mosquitto",
        "/usr/local/sbin/mosquitto",
        "/opt/homebrew/sbin/mosquitto",
    ):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log written)"


class MosquittoBroker:
    """One mosquitto process listening on 127.0.0.1, configured from Python.

    ``state_dir`` holds the generated ``mosquitto.conf``, the log and (with ``persistence``) the
    database; a temporary folder is used when it is None. ``port`` None picks a free port, which is
    then kept across :meth:`restart`. ``extra_config`` lines are appended right after the main
    listener (so TLS lines such as ``cafile``/``certfile`` apply to it); if any of them sets
    ``allow_anonymous`` or ``password_file``, anonymous access is not turned on.

    ``autosave_changes``: with persistence, mosquitto writes its database after this many changes.
    The default, 1, writes after every change so that a SIGKILL loses no acknowledged QoS 1
    message — the point of persistence in a crash test. Raise it for throughput.
    ``websockets_port`` adds a second, websockets listener (for a browser fleet view).
    """

    def __init__(
        self,
        state_dir: Path | None = None,
        port: int | None = None,
        persistence: bool = False,
        extra_config: Sequence[str] = (),
        *,
        websockets_port: int | None = None,
        autosave_changes: int = 1,
        binary: str | None = None,
    ) -> None:
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        if state_dir is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="tinyfleet-broker-")
            state_dir = Path(self._tempdir.name)
        self.state_dir = Path(state_dir)
        self.host = HOST
        self.port = port or free_port()
        self.persistence = persistence
        self.extra_config = tuple(extra_config)
        self.websockets_port = websockets_port
        self.autosave_changes = max(1, int(autosave_changes))
        self.binary = binary or mosquitto_binary()
        self.protocol_v5 = True
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.state_dir / CONFIG_FILE

    @property
    def log_path(self) -> Path:
        return self.state_dir / LOG_FILE

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def config_text(self) -> str:
        """The mosquitto.conf this broker runs with."""
        sets_auth = any(
            line.strip().startswith(("allow_anonymous", "password_file"))
            for line in self.extra_config
        )
        lines = [
            "# generated by tinyfleet (ops/broker.py)",
            "per_listener_settings false",
            f"listener {self.port} {self.host}",
            *self.extra_config,
        ]
        if not sets_auth:
            lines.append("allow_anonymous true")
        if self.websockets_port:
            lines += [f"listener {self.websockets_port} {self.host}", "protocol websockets"]
        lines += [
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
            "connection_messages true",
            "set_tcp_nodelay true",
            f"max_queued_messages {MAX_QUEUED_MESSAGES}",
            "max_inflight_messages 0",
            "persistent_client_expiration 1d",
        ]
        if os.geteuid() == 0:
            # As root mosquitto drops to user "mosquitto", which cannot write our state folder.
            lines.append(f"user {getpass.getuser()}")
        if self.persistence:
            lines += [
                "persistence true",
                f"persistence_location {self.state_dir}/",
                f"persistence_file {PERSISTENCE_FILE}",
                "autosave_on_changes true",
                f"autosave_interval {self.autosave_changes}",
            ]
        else:
            lines.append("persistence false")
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 10.0) -> MosquittoBroker:
        """Write the config, start mosquitto and wait until the port accepts connections."""
        if self.is_running():
            return self
        if not self.binary:
            raise BrokerError(
                "the mosquitto binary is not installed: `sudo apt-get install mosquitto` "
                "(or use start_broker(), which falls back to an in-process amqtt broker)"
            )
        if port_accepts(self.host, self.port):
            raise BrokerError(
                f"port {self.port} on {self.host} is already in use (another broker?): stop it, "
                "or pass another --port"
            )
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config_text())
        log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._process = subprocess.Popen(
            [self.binary, "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # a Ctrl-C in the terminal reaches us, and we stop it cleanly
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            if port_accepts(self.host, self.port):
                log.info("mosquitto (pid %d) listening on %s", self._process.pid, self.url)
                return self
            time.sleep(0.02)
        stderr = b""
        if self._process.poll() is not None and self._process.stderr:
            stderr = self._process.stderr.read() or b""
        self._terminate(signal.SIGKILL)
        log_text = _tail(self.log_path)
        if log_offset and self.log_path.exists():
            log_text = self.log_path.read_text(errors="replace")[log_offset:][-3000:]
        raise BrokerError(
            f"mosquitto did not accept connections on {self.url} within {timeout:g} s. "
            f"stderr: {stderr.decode(errors='replace').strip() or '(empty)'}; log tail:\n{log_text}\n"
            "Check that the port is free (pass another --port) and the config lines are valid."
        )

    def _terminate(self, sig: signal.Signals) -> None:
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(sig)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if process.stderr:
            process.stderr.close()
        self._process = None

    def stop(self) -> None:
        """Stop gracefully (SIGTERM): mosquitto saves its persistence database on the way out."""
        self._terminate(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL, as a power cut would: no goodbye to clients, no final save of the database."""
        self._terminate(signal.SIGKILL)

    def restart(self, timeout: float = 10.0) -> MosquittoBroker:
        """Stop (if running) and start again on the same port with the same persistence file."""
        self.stop()
        return self.start(timeout=timeout)

    def close(self) -> None:
        self.stop()
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    def __enter__(self) -> MosquittoBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AmqttBroker:
    """In-process fallback broker (amqtt, MQTT 3.1.1 only) for machines without mosquitto.

    Runs an asyncio loop in a daemon thread. No v5 (no shared subscriptions, no message expiry) and
    no persistence across :meth:`restart`; :meth:`kill` is the same as :meth:`stop`.
    """

    def __init__(self, port: int | None = None) -> None:
        self.host = HOST
        self.port = port or free_port()
        self.protocol_v5 = False
        self.persistence = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._broker = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 10.0) -> AmqttBroker:
        try:
            from amqtt.broker import Broker
        except ImportError as exc:
            raise BrokerError(
                "neither mosquitto nor amqtt is installed: `sudo apt-get install mosquitto` "
                "(recommended) or `pip install amqtt`"
            ) from exc
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "sys_interval": 0,
            "auth": {"allow-anonymous": True},
            "topic-check": {"enabled": False},
        }
        ready = threading.Event()
        errors: list[BaseException] = []
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                self._broker = Broker(config, loop=loop)
                loop.run_until_complete(self._broker.start())
            except BaseException as exc:  # reported to the caller below
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="amqtt-broker", daemon=True)
        self._thread.start()
        ready.wait(timeout)
        if errors or not port_accepts(self.host, self.port):
            raise BrokerError(f"the amqtt fallback broker did not start on {self.url}: {errors!r}")
        return self

    def stop(self) -> None:
        if self._loop is None or self._broker is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop)
        with contextlib.suppress(Exception):
            future.result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(timeout=5)
        self._loop = None
        self._broker = None
        self._thread = None

    kill = stop
    close = stop

    def restart(self, timeout: float = 10.0) -> AmqttBroker:
        self.stop()
        return self.start(timeout=timeout)

    def __enter__(self) -> AmqttBroker:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_broker(
    state_dir: Path | None = None,
    port: int | None = None,
    persistence: bool = False,
    extra_config: Sequence[str] = (),
    *,
    websockets_port: int | None = None,
    timeout: float = 10.0,
) -> MosquittoBroker | AmqttBroker:
    """Start mosquitto; only if its binary is absent, an in-process amqtt broker (with a warning)."""
    if mosquitto_binary():
        broker = MosquittoBroker(
            state_dir, port, persistence, extra_config, websockets_port=websockets_port
        )
        return broker.start(timeout=timeout)
    if extra_config or persistence or websockets_port:
        raise BrokerError(
            "mosquitto is not installed, and the amqtt fallback supports neither persistence, "
            "websockets nor extra (security) config: `sudo apt-get install mosquitto`"
        )
    log.warning(
        "mosquitto is not installed (`sudo apt-get install mosquitto`); falling back to an "
        "in-process amqtt broker: MQTT 3.1.1 only, no shared subscriptions, no persistence"
    )
    return AmqttBroker(port).start(timeout=timeout)
