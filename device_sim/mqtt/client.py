"""paho-mqtt 2.x helpers shared by devices and subscribers.

* broker URLs: ``mqtt://HOST:PORT`` (plain) and ``mqtts://HOST:PORT`` (TLS);
* one place that builds a ``paho.mqtt.client.Client`` with ``CallbackAPIVersion.VERSION2``,
  credentials and TLS;
* MQTT v5 when the broker speaks it, else 3.1.1: :func:`detect_protocol` tries a v5 CONNECT once
  per broker and remembers the answer (mosquitto speaks v5; the amqtt fallback only 3.1.1).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import random
import selectors
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from device_sim.errors import BrokerError, ConfigError
from device_sim.mqtt import topics

log = logging.getLogger(__name__)

MQTT_V5 = mqtt.MQTTv5
MQTT_V311 = mqtt.MQTTv311
DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
# CONNACK reason codes that prove the broker speaks v5 even though it refused us.
_V5_AUTH_REFUSALS = {134, 135, 138}  # bad user name or password, not authorized, banned


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool = False

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def parse_broker_url(url: str) -> BrokerAddress:
    """``mqtt://host:port`` → BrokerAddress; a bare ``host:port`` means plain MQTT."""
    if "://" not in url:
        url = f"mqtt://{url}"
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ConfigError(
            f"broker URL {url!r} is not understood: use mqtt://HOST:PORT or mqtts://HOST:PORT "
            "(e.g. the URL `tinyfleet broker` prints)"
        )
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError as exc:
        raise ConfigError(f"broker URL {url!r} has an invalid port") from exc
    return BrokerAddress(parts.hostname, port, parts.scheme == "mqtts")


@dataclass(frozen=True)
class Credentials:
    """How to log in: user name/password and, for TLS, the CA certificate that signed the broker.

    ``tls`` is implied by an ``mqtts://`` URL or a ``ca_file``.
    """

    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None
    tls: bool = False

    def check(self) -> Credentials:
        if self.password is not None and self.username is None:
            raise ConfigError("--password needs --username")
        if self.ca_file is not None and not Path(self.ca_file).is_file():
            raise ConfigError(f"CA certificate {self.ca_file} does not exist: pass --ca FILE")
        return self


def new_client(
    client_id: str | None,
    address: BrokerAddress,
    credentials: Credentials = Credentials(),
    protocol: int = MQTT_V5,
    *,
    clean: bool = True,
) -> mqtt.Client:
    """A paho client with VERSION2 callbacks, credentials and TLS set; not yet connected.

    ``clean`` False asks the broker to keep the session (subscriptions, queued QoS 1 messages)
    while the client is away; for v5 that is ``clean_start`` at connect time, here for 3.1.1.
    """
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id or f"tinyfleet-{uuid.uuid4().hex[:12]}",
        protocol=protocol,
        clean_session=None if protocol == MQTT_V5 else clean,
    )
    if credentials.username is not None:
        client.username_pw_set(credentials.username, credentials.password)
    if address.tls or credentials.tls or credentials.ca_file:
        context = ssl.create_default_context(
            cafile=str(credentials.ca_file) if credentials.ca_file else None
        )
        client.tls_set_context(context)
    return client


def connect_properties(session_expiry_s: int) -> Properties:
    """v5 CONNECT properties: how long the broker keeps our session while we are away (s)."""
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = int(session_expiry_s)
    return props


@functools.lru_cache(maxsize=65536)
def _topic_matches(topic_filter: str, topic: str) -> bool:
    """``mqtt.topic_matches_sub``, remembered: it builds a matcher tree per call (~10 µs), and a
    fleet sends the same few thousand topics over and over."""
    return mqtt.topic_matches_sub(topic_filter, topic)


class _FrozenProperties(Properties):
    """PUBLISH properties packed once: paho re-packs them for every message (~0.2 ms each),
    which was a quarter of a device's CPU per window in a 500-device fleet."""

    def pack(self) -> bytes:
        packed = self.__dict__.get("_packed")
        if packed is None:
            packed = self.__dict__["_packed"] = super().pack()  # bypasses the name check
        return packed


def publish_properties(
    expiry_s: int | None = None, schema: int | None = None, content_type: str | None = None
) -> Properties:
    """v5 PUBLISH properties: message expiry (s), content type and the payload schema version.

    Treat the result as immutable: it is packed on first use and reused for every message.
    """
    props = _FrozenProperties(PacketTypes.PUBLISH)
    if expiry_s:
        props.MessageExpiryInterval = int(expiry_s)
    if content_type:
        props.ContentType = content_type
    if schema is not None:
        props.UserProperty = ("schema", str(schema))
    return props


_protocol_cache: dict[tuple[str, int], int] = {}
_cache_lock = threading.Lock()


def detect_protocol(
    address: BrokerAddress, credentials: Credentials = Credentials(), timeout: float = 5.0
) -> int:
    """MQTT v5 if the broker answers a v5 CONNECT, else 3.1.1. Remembered per host:port.

    Raises :class:`BrokerError` when the broker cannot be reached at all.
    """
    key = (address.host, address.port)
    with _cache_lock:
        if key in _protocol_cache:
            return _protocol_cache[key]
    outcome: dict[str, object] = {}

    def on_connect(client, userdata, flags, reason_code, properties) -> None:
        outcome["code"] = reason_code.value if hasattr(reason_code, "value") else int(reason_code)

    def on_disconnect(client, userdata, flags, reason_code, properties) -> None:
        outcome.setdefault("code", -1)

    client = new_client(f"tinyfleet-probe-{uuid.uuid4().hex[:8]}", address, credentials, MQTT_V5)
    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    try:
        client.connect(address.host, address.port, keepalive=10, clean_start=True)
    except (OSError, ssl.SSLError) as exc:
        raise BrokerError(f"cannot reach the MQTT broker at {address.url}: {exc}") from exc
    deadline = time.monotonic() + timeout
    while "code" not in outcome and time.monotonic() < deadline:
        if client.loop(timeout=0.05) not in (mqtt.MQTT_ERR_SUCCESS,):
            outcome.setdefault("code", -1)
    code = outcome.get("code", -1)
    if code == 0:
        client.disconnect()
        client.loop(timeout=0.05)
    client.socket() and client.socket().close()  # type: ignore[union-attr]
    protocol = MQTT_V5 if code == 0 or code in _V5_AUTH_REFUSALS else MQTT_V311
    if protocol == MQTT_V311:
        log.warning(
            "the broker at %s does not speak MQTT v5 (answer %s): using 3.1.1 — no shared "
            "subscriptions, message expiry or user properties",
            address.url,
            code,
        )
    with _cache_lock:
        _protocol_cache[key] = protocol
    return protocol


def forget_protocol(address: BrokerAddress) -> None:
    """Drop the remembered protocol (a different broker may now listen on that port)."""
    with _cache_lock:
        _protocol_cache.pop((address.host, address.port), None)


BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 30.0
MessageCallback = Callable[[mqtt.MQTTMessage], None]


class Connection:
    """One MQTT client session kept up by a :class:`NetworkLoop`.

    It (re)connects with exponential backoff (0.5 s doubling to 30 s, with jitter) and logs where it
    is trying; after every CONNACK it re-subscribes its filters and calls ``on_connected`` hooks.
    ``clean`` False + ``session_expiry_s`` make the broker keep the session while we are away, so
    QoS 1 messages for us are queued rather than lost. ``will`` is (topic, payload, qos, retain).
    """

    def __init__(
        self,
        client_id: str,
        address: BrokerAddress,
        credentials: Credentials = Credentials(),
        *,
        name: str | None = None,
        will: tuple[str, bytes, int, bool] | None = None,
        clean: bool = False,
        session_expiry_s: int = 3600,
        keepalive_s: int = 30,
        protocol: int | None = None,
        max_inflight: int = 200,
    ) -> None:
        self.client_id = client_id
        self.address = address
        self.credentials = credentials
        self.name = name or client_id
        self.will = will
        self.clean = clean
        self.session_expiry_s = session_expiry_s
        self.keepalive_s = keepalive_s
        self.protocol = protocol
        self.max_inflight = max_inflight
        self.client: mqtt.Client | None = None
        self.connected = False
        self.connects = 0
        self.next_attempt = 0.0
        self.closed = False
        self._backoff = BACKOFF_MIN_S
        self._failures = 0
        self._subscriptions: dict[str, tuple[int, MessageCallback]] = {}
        self.on_connected: list[Callable[[Connection, bool], None]] = []
        self.on_disconnected: list[Callable[[Connection], None]] = []
        self.on_publish: Callable[[int], None] | None = None
        self.loop: NetworkLoop | None = None

    @property
    def is_v5(self) -> bool:
        return self.protocol == MQTT_V5

    @property
    def awaiting_connack(self) -> bool:
        """CONNECT sent, no CONNACK yet."""
        return not self.connected and not self.closed and self.next_attempt == float("inf")

    def subscribe(self, topic_filter: str, callback: MessageCallback, qos: int = 1) -> None:
        """Route messages matching ``topic_filter`` to ``callback``; (re)subscribed on connect."""
        self._subscriptions[topic_filter] = (qos, callback)
        if self.connected and self.client is not None:
            self.client.subscribe(topic_filter, qos)

    # -- connecting -------------------------------------------------------------------------------
    def _build(self) -> mqtt.Client:
        assert self.protocol is not None
        client = new_client(
            self.client_id, self.address, self.credentials, self.protocol, clean=self.clean
        )
        client.max_inflight_messages_set(self.max_inflight)
        client.connect_timeout = 5.0
        if self.will is not None:
            topic, payload, qos, retain = self.will
            client.will_set(topic, payload, qos, retain)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    def attempt(self) -> None:
        """One connection attempt (called by the loop when the backoff has passed)."""
        try:
            if self.protocol is None:
                self.protocol = detect_protocol(self.address, self.credentials)
            if self.client is None:
                self.client = self._build()
                if self.loop is not None:
                    self.loop.attach(self.client)
                kwargs = {}
                if self.is_v5:
                    kwargs = {
                        "clean_start": self.clean,
                        "properties": connect_properties(
                            0 if self.clean else self.session_expiry_s
                        ),
                    }
                self.client.connect(
                    self.address.host, self.address.port, self.keepalive_s, **kwargs
                )
            else:
                self.client.reconnect()
        except BrokerError as exc:
            self._schedule_retry(str(exc))
            return
        except (OSError, ssl.SSLError) as exc:
            self._schedule_retry(f"cannot reach the MQTT broker at {self.address.url} ({exc})")
            return
        # CONNECT sent; if no CONNACK comes, loop_misc's keepalive check drops the socket.
        self.next_attempt = float("inf")

    def _schedule_retry(self, why: str) -> None:
        self._failures += 1
        delay = self._backoff * random.uniform(0.8, 1.2)
        self._backoff = min(self._backoff * 2, BACKOFF_MAX_S)
        self.next_attempt = time.monotonic() + delay
        level = (
            logging.WARNING if self._failures == 1 or delay > BACKOFF_MAX_S * 0.7 else logging.INFO
        )
        log.log(level, "%s: %s; retrying in %.1f s", self.name, why, delay)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            hint = ""
            if reason_code.value in (134, 135, 4, 5):
                hint = " — check --username/--password and the broker's ACL"
            self._schedule_retry(
                f"the broker at {self.address.url} refused us: {reason_code}{hint}"
            )
            return
        self.connected = True
        self.connects += 1
        if self.loop is not None:
            self.loop.down.discard(self)
        if self._failures:
            log.info("%s: connected to %s", self.name, self.address.url)
        self._failures = 0
        self._backoff = BACKOFF_MIN_S
        for topic_filter, (qos, _) in self._subscriptions.items():
            client.subscribe(topic_filter, qos)
        for hook in list(self.on_connected):
            hook(self, bool(getattr(flags, "session_present", False)))

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        was_connected = self.connected
        self.connected = False
        if self.closed:
            return
        if self.loop is not None:
            self.loop.down.add(self)
        if self.next_attempt == float("inf") or was_connected:
            self._schedule_retry(
                f"connection to {self.address.url} lost ({reason_code})"
                if was_connected
                else f"the broker at {self.address.url} closed the connection ({reason_code})"
            )
        for hook in list(self.on_disconnected):
            hook(self)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        if self.on_publish is not None:
            self.on_publish(mid)

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        for topic_filter, (_, callback) in self._subscriptions.items():
            if _topic_matches(topics.unshared(topic_filter), message.topic):
                try:
                    callback(message)
                except Exception:  # one bad handler must not take the network loop down
                    log.exception("%s: handler for %s failed", self.name, topic_filter)

    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        retain: bool = False,
        properties: Properties | None = None,
    ) -> int | None:
        """Hand a message to paho; returns its mid, or None when not connected."""
        if not self.connected or self.client is None:
            return None
        info = self.client.publish(topic, payload, qos, retain, properties if self.is_v5 else None)
        return info.mid

    def disconnect(self) -> None:
        """Say goodbye (no Last Will) and stop reconnecting."""
        self.closed = True
        if self.client is not None and self.connected:
            self.client.disconnect()


_TCP_CORK = getattr(socket, "TCP_CORK", None)  # Linux


@contextlib.contextmanager
def _corked(sock):
    """Hold back partial TCP segments while paho writes its queued packets one ``send`` each.

    paho sends every MQTT packet with its own ``send``; on Linux each one otherwise goes through
    the whole TCP transmit path (and wakes the broker) on its own. Corked, the packets of one pass
    leave together in as few segments as fit, the moment the cork is removed: the same bytes in
    the same order, just fewer segments. A no-op where TCP_CORK does not exist.
    """
    corked = False
    if _TCP_CORK is not None:
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.IPPROTO_TCP, _TCP_CORK, 1)
            corked = True
    try:
        yield
    finally:
        if corked:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, _TCP_CORK, 0)


def _has_data(sock) -> bool:
    """True when ``sock`` has received bytes waiting to be read (never blocks)."""
    if isinstance(sock, ssl.SSLSocket):
        return sock.pending() > 0  # decrypted bytes; the rest shows up in the next select
    try:
        return bool(sock.recv(1, socket.MSG_PEEK | getattr(socket, "MSG_DONTWAIT", 0)))
    except OSError:  # nothing yet (BlockingIOError) or an error loop_read will report
        return False


class NetworkLoop:
    """Drives many paho clients from one thread with ``selectors`` (no thread per client).

    Each pass: connection attempts that are due, ``select`` on all sockets (and a wake-up pipe so
    other threads can hand over work), ``loop_read``/``loop_write`` on ready sockets, ``loop_misc``
    (keepalive) every 0.25 s. The ``idle_hooks`` (e.g. publishers draining their outbox) run
    before the ``select``, so what they hand to paho is written in the same pass.
    """

    MISC_INTERVAL_S = 0.25
    MAX_CONNECTING = 32
    MAX_READS_PER_PASS = 256  # packets read from one socket before the others get their turn

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.connections: list[Connection] = []
        self.idle_hooks: list[Callable[[], None]] = []
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._last_misc = 0.0
        self._lock = threading.Lock()
        self._added: list[Connection] = []
        self.down: set[Connection] = set()  # not connected (yet/any more): to (re)connect

    def add(self, connection: Connection) -> Connection:
        """Register a connection; it connects on the next pass (thread-safe)."""
        connection.loop = self
        with self._lock:
            self._added.append(connection)
        self.wake()
        return connection

    def attach(self, client: mqtt.Client) -> None:
        """Wire paho's socket callbacks to our selector."""
        client.on_socket_open = self._socket_open
        client.on_socket_close = self._socket_close
        client.on_socket_register_write = self._register_write
        client.on_socket_unregister_write = self._unregister_write

    def _socket_open(self, client, userdata, sock) -> None:
        self.selector.register(sock, selectors.EVENT_READ, client)

    def _socket_close(self, client, userdata, sock) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(sock)

    def _register_write(self, client, userdata, sock) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.modify(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, client)

    def _unregister_write(self, client, userdata, sock) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.modify(sock, selectors.EVENT_READ, client)

    def wake(self) -> None:
        """Interrupt a ``select`` from another thread."""
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_w.send(b"\0")

    def run_once(self, timeout: float) -> None:
        if self._added:
            with self._lock:
                self.connections.extend(self._added)
                self.down.update(self._added)
                self._added.clear()
        now = time.monotonic()
        if self.down:
            # A fleet connecting at once would overflow the broker's listen backlog; a dropped
            # SYN makes the blocking TCP connect wait ~1 s for its retransmission, stalling every
            # device of this loop. So at most MAX_CONNECTING handshakes run at a time.
            down = list(self.down)
            connecting = sum(1 for c in down if c.awaiting_connack)
            for connection in down:
                if connecting >= self.MAX_CONNECTING:
                    break
                if connection.closed:
                    self.down.discard(connection)
                elif connection.next_attempt <= now:
                    connection.attempt()
                    connecting += connection.awaiting_connack
        for hook in self.idle_hooks:  # before select: what they publish goes out in this pass
            hook()
        if self.down:
            due = min(c.next_attempt for c in self.down)
            timeout = max(0.0, min(timeout, due - now))
        for key, mask in self.selector.select(timeout):
            client = key.data
            if client is None:
                with contextlib.suppress(BlockingIOError, OSError):
                    self._wake_r.recv(4096)
                continue
            if mask & selectors.EVENT_READ:
                client.loop_read()
                # paho reads one packet per call unless it awaits acknowledgements; a subscriber
                # would need a whole pass (select, hooks) per message. Read on while data waits.
                for _ in range(self.MAX_READS_PER_PASS):
                    if client.socket() is not key.fileobj or not _has_data(key.fileobj):
                        break
                    client.loop_read()
            if mask & selectors.EVENT_WRITE:
                # paho keeps its unsent packets in _out_packet (no public count); cork only when
                # a write carries several of them, as a lone packet gains nothing from it
                if len(getattr(client, "_out_packet", ())) > 1:
                    with _corked(key.fileobj):
                        client.loop_write()
                else:
                    client.loop_write()
        now = time.monotonic()
        if now - self._last_misc >= self.MISC_INTERVAL_S:
            self._last_misc = now
            for connection in self.connections:
                if connection.client is not None and connection.client.socket() is not None:
                    connection.client.loop_misc()

    def run(self, stop: threading.Event, timeout: float = 0.05) -> None:
        """Pass after pass until ``stop`` is set (for a network thread)."""
        while not stop.is_set():
            self.run_once(timeout)

    def flush(self, connections: list[Connection] | None = None, timeout: float = 5.0) -> None:
        """Run passes until the given connections have nothing left to write (or the timeout)."""
        deadline = time.monotonic() + timeout
        targets = connections if connections is not None else self.connections
        while time.monotonic() < deadline:
            self.run_once(0.01)
            if all(
                c.client is None or not c.connected or not c.client.want_write() for c in targets
            ):
                return

    def close(self) -> None:
        for connection in self.connections:
            connection.closed = True
            if connection.client is not None:
                with contextlib.suppress(Exception):
                    sock = connection.client.socket()
                    if sock is not None:
                        self._socket_close(connection.client, None, sock)
                        sock.close()
        self.selector.close()
        self._wake_r.close()
        self._wake_w.close()
