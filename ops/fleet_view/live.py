"""Serve the live fleet page from mosquitto's websockets listener (``http_dir``), optionally bridged.

The page connects back to the host:port it was loaded from, so one port carries both the page
(HTTP GET) and the MQTT-over-WebSockets session. Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import logging
from pathlib import Path

from device_sim.errors import BrokerError
from device_sim.mqtt import topics
from ops.broker import HOST, MosquittoBroker, free_port, mosquitto_binary

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
PAGE = "index.html"


def websockets_listener_config(port: int, host: str = HOST) -> list[str]:
    """mosquitto.conf lines for a websockets listener that also serves the fleet page.

    Append them *last* to a broker's ``extra_config``: listener options that follow (TLS files)
    would otherwise apply to this listener instead of the main one.
    """
    if not (STATIC_DIR / PAGE).is_file():
        raise BrokerError(f"the fleet page {STATIC_DIR / PAGE} is missing: reinstall tinyfleet")
    return [f"listener {port} {host}", "protocol websockets", f"http_dir {STATIC_DIR}"]


def fleet_view_url(port: int, host: str = HOST) -> str:
    """Where a browser opens the page served by :func:`websockets_listener_config`."""
    return f"http://{host}:{port}/{PAGE}"


def _bridge_config(broker_host: str, broker_port: int) -> list[str]:
    """Bridge lines: copy ``tinyfleet/#`` from the fleet broker into the view's broker (QoS 1).

    A bridge keeps retained device status (online/offline) and reconnects by itself when the fleet
    broker restarts, so the page never needs credentials for or a websockets listener on it.
    """
    return [
        "connection tinyfleet-fleet-view",
        f"address {broker_host}:{broker_port}",
        f"topic {topics.ALL_TOPICS} in 1",
        "cleansession true",
        "bridge_protocol_version mqttv311",
        "try_private false",
        "restart_timeout 1 5",
        "notifications false",
    ]


class FleetView:
    """A small mosquitto that bridges a fleet broker in and serves the live page over websockets.

    ``with FleetView("127.0.0.1", 1883) as view: print(view.url)``. ``port`` None picks a free port.
    """

    def __init__(
        self,
        broker_host: str,
        broker_port: int,
        port: int | None = None,
        state_dir: Path | None = None,
    ) -> None:
        if mosquitto_binary() is None:
            raise BrokerError(
                "the fleet view is served by mosquitto, which is not installed: "
                "`sudo apt-get install mosquitto`"
            )
        self.port = port or free_port()
        # websockets listener + page first, then the bridge block (bridge options must come last).
        self.broker = MosquittoBroker(
            state_dir=state_dir,
            extra_config=[
                *websockets_listener_config(self.port),
                *_bridge_config(broker_host, broker_port),
            ],
        )

    @property
    def url(self) -> str:
        return fleet_view_url(self.port)

    def start(self, timeout: float = 10.0) -> FleetView:
        self.broker.start(timeout=timeout)
        log.info("fleet view at %s (bridged from the fleet broker)", self.url)
        return self

    def close(self) -> None:
        self.broker.close()

    def __enter__(self) -> FleetView:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()
