"""A static HTML snapshot of the fleet, for programs that write a file (Python API, no CLI flag).

Feed every received message to :meth:`FleetState.update` (topic + raw payload) and call
:func:`write_fleet_html` whenever the file should be refreshed; the page reloads itself every
few seconds. The live page (``static/``) shows the same columns without a file in between.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from device_sim.atomic import atomic_write
from device_sim.mqtt import topics

MAX_EVENTS = 50
_ENVELOPE = {
    "schema", "device", "task", "model", "ts", "ts_ms", "seq", "window", "valid", "reason",
    "timing_ms",
}  # fmt: skip


@dataclass
class TaskState:
    """The last prediction and model identity of one (device, task), and whether it alarms."""

    prediction: dict[str, Any] | None = None
    model: dict[str, Any] | None = None
    alarm: bool = False
    health: str | None = None  # from `tinyfleet monitor`: ok, drift or silent


@dataclass
class FleetState:
    """Everything the fleet page shows, built from raw MQTT messages of the tinyfleet topics."""

    status: dict[str, str] = field(default_factory=dict)
    tasks: dict[tuple[str, str], TaskState] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    messages: int = 0

    def update(self, topic: str, payload: bytes) -> None:
        """Fold one message in; payloads that are not tinyfleet JSON are ignored, not fatal."""
        if not topic.startswith(f"{topics.PREFIX}/"):
            return
        self.messages += 1
        parsed = topics.parse_topic(topic)
        if parsed is None:
            return
        device, task, kind = parsed.device, parsed.task, parsed.kind
        if kind == "status":
            self.status[device] = payload.decode("utf-8", "replace").strip() or "unknown"
            return
        if task is None:
            return
        try:
            message = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return
        if not isinstance(message, dict):
            return
        self.status.setdefault(device, "unknown")
        state = self.tasks.setdefault((device, task), TaskState())
        if kind == "prediction":
            state.prediction = message
            if isinstance(message.get("alarm"), bool):
                state.alarm = message["alarm"]
            if isinstance(message.get("model"), dict):
                state.model = message["model"]
        elif kind == "model":
            state.model = message
        elif kind == "event":
            event = message.get("event") if isinstance(message.get("event"), dict) else {}
            alarm = _alarm_state(task, event)
            if alarm is not None:
                state.alarm = alarm
            self.events.insert(0, {"device": device, "task": task, **message})
            del self.events[MAX_EVENTS:]
        elif kind == "health":
            state.health = str(message.get("status", "unknown"))
            reasons = "; ".join(str(r) for r in message.get("reasons") or [])
            health = {"type": "health", "status": state.health, "reasons": reasons}
            self.events.insert(0, {"device": device, "task": task, "event": health})
            del self.events[MAX_EVENTS:]


def _spec(task: str) -> Any:
    """The task's spec, or None for a task this tinyfleet does not know (shown as raw JSON)."""
    from device_sim.tasks import spec_for, task_names

    return spec_for(task) if task in task_names() else None


def _alarm_state(task: str, event: dict[str, Any]) -> bool | None:
    """True/False when ``event`` raises/clears the task's alarm (its spec decides), else None."""
    spec = _spec(task)
    if spec is None or spec.alarm_state is None:
        return None
    return spec.alarm_state(event)


def summary(task: str, prediction: dict[str, Any]) -> str:
    """What the device concluded, in the user's words (same wording as the live page)."""
    if prediction.get("valid") is False:
        return f"invalid window: {prediction.get('reason', '?')}"
    spec = _spec(task)
    cells = spec.fleet_cells(prediction) if spec is not None else {}
    if "prediction" in cells:
        return str(cells["prediction"])
    rest = {k: v for k, v in prediction.items() if k not in _ENVELOPE}
    return json.dumps(rest, default=str)[:160]


def render_fleet_html(state: FleetState, refresh_seconds: int = 5) -> str:
    """The snapshot page; every value from the network is HTML-escaped."""
    e = html.escape
    rows = []
    for (device, task), ts in sorted(state.tasks.items()):
        status = state.status.get(device, "unknown")
        model = ts.model or {}
        classes = " ".join(c for c in ("alarm" if ts.alarm else "", status) if c)
        rows.append(
            f'<tr class="{e(classes)}" data-device="{e(device)}" data-task="{e(task)}">'
            f"<td>{e(device)}</td><td>{e(status)}</td><td>{e(task)}</td>"
            f"<td>{e(str(model.get('name', '')))} {e(str(model.get('version', '')))}</td>"
            f"<td>{e(summary(task, ts.prediction)) if ts.prediction else ''}</td>"
            f"<td>{e(str(ts.prediction.get('seq', ''))) if ts.prediction else ''}</td>"
            f"<td>{'ALARM' if ts.alarm else ''}</td></tr>"
        )
    for device, status in sorted(state.status.items()):
        if not any(d == device for d, _ in state.tasks):
            rows.append(f"<tr><td>{e(device)}</td><td>{e(status)}</td><td colspan=5></td></tr>")
    events = "".join(
        f"<li>{e(str(ev.get('ts', '')))} {e(ev['device'])}/{e(ev['task'])}: "
        f"{e(json.dumps(ev.get('event', {}), default=str)[:200])}</li>"
        for ev in state.events
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="{int(refresh_seconds)}">'
        "<title>tinyfleet fleet snapshot</title><style>"
        "body{font-family:system-ui,sans-serif;margin:1em 2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ddd;padding:4px 8px;font-size:14px}th{background:#f4f4f4}"
        "tr.alarm td{background:#fde2e2}tr.offline td{color:#999}</style></head><body>"
        f"<h1>tinyfleet fleet snapshot</h1><p>{state.messages} messages</p>"
        "<table><tr><th>device</th><th>status</th><th>task</th><th>model</th>"
        "<th>last prediction</th><th>seq</th><th>alarm</th></tr>"
        f"{''.join(rows)}</table><h2>Events</h2><ol>{events}</ol></body></html>\n"
    )


def write_fleet_html(path: str | Path, state: FleetState, refresh_seconds: int = 5) -> Path:
    """Write the snapshot atomically (a browser reloading mid-write never sees half a page)."""
    return atomic_write(path, render_fleet_html(state, refresh_seconds).encode("utf-8"))
