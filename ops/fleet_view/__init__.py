"""The fleet view: a live web page of devices, last predictions and alarms, served by mosquitto.

Why this shape: mosquitto can serve static files on its websockets listener (``http_dir``), so the
page and the MQTT-over-WebSockets connection come from one process the project already runs — no
web server, no Python bridge, nothing listening beyond loopback. The page (``static/``) uses the
vendored MQTT.js browser bundle (MIT, ``static/mqtt.LICENSE.txt``) and subscribes read-only to the
fleet's topics.

Two ways to get it:

* :func:`websockets_listener_config` — lines to append to the fleet broker's ``extra_config``
  (after any TLS lines, which must stay with the main listener);
* :class:`FleetView` — a separate, small mosquitto that bridges ``tinyfleet/#`` *in* from any
  existing broker and serves the page (``tinyfleet fleet-view --broker HOST:PORT``).

:class:`FleetState` + :func:`write_fleet_html` render a static snapshot for programs that write
a file instead (a Python API only: no CLI command writes it; the CLI's page is ``fleet-view``).
"""

from __future__ import annotations

from ops.fleet_view.live import (
    STATIC_DIR,
    FleetView,
    fleet_view_url,
    websockets_listener_config,
)
from ops.fleet_view.snapshot import FleetState, write_fleet_html

__all__ = [
    "STATIC_DIR",
    "FleetState",
    "FleetView",
    "fleet_view_url",
    "websockets_listener_config",
    "write_fleet_html",
]
