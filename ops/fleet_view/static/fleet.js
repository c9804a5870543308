// tinyfleet fleet view: live devices, last predictions and alarms, straight from the MQTT broker.
//
// The page is served by mosquitto itself (`http_dir` on its websockets listener), so it connects
// back to the host it came from; `?broker=ws://host:port` overrides that (e.g. for file:// use).
// Payloads come from devices and are untrusted: everything is written with textContent, never
// innerHTML, and every value read from a message goes through text()/isObject() first, because a
// message may hold any JSON shape ({"name": {"toString": 0}} breaks `${value}`; issue #20).
// Topics and payloads are documented in docs/mqtt.md.
"use strict";

const TOPICS = [
  "tinyfleet/+/status",
  "tinyfleet/+/+/prediction",
  "tinyfleet/+/+/event",
  "tinyfleet/+/+/model",
  "tinyfleet/+/+/health", // `tinyfleet monitor`: drift / silence against the bundle's reference
];
const MAX_EVENTS = 50;

const devices = new Map(); // device -> {status, tasks: Map(task -> {last, model, alarm, at})}
const events = [];
let messageCount = 0;

function brokerUrl() {
  const override = new URLSearchParams(window.location.search).get("broker");
  if (override) return override;
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${window.location.host}/mqtt`;
}

function device(id) {
  if (!devices.has(id)) devices.set(id, { status: "unknown", tasks: new Map() });
  return devices.get(id);
}

function task(dev, name) {
  if (!dev.tasks.has(name)) dev.tasks.set(name, { last: null, model: null, alarm: false, at: 0 });
  return dev.tasks.get(name);
}

function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

// Any JSON value as display text; never throws (JSON from JSON.parse has no cycles or BigInt).
function text(value) {
  if (typeof value === "string") return value;
  if (value === null || value === undefined) return "";
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  try {
    return JSON.stringify(value).slice(0, 160);
  } catch (err) {
    return "?";
  }
}

function fixed(value, digits) {
  return typeof value === "number" ? value.toFixed(digits) : text(value);
}

// One line per task, in the user's words (what the device concluded, not the raw tensor).
function summary(taskName, p) {
  if (p.valid === false) return `invalid window: ${text(p.reason) || "?"}`;
  if (taskName === "kws" && p.label !== undefined) return `${text(p.label)} (${fixed(p.score, 2)})`;
  if (taskName === "vibration" && p.anomaly_score !== undefined) {
    return `score ${fixed(p.anomaly_score, 3)} / threshold ${fixed(p.threshold, 3)}` +
      (p.anomaly ? " — anomalous window" : "");
  }
  if (taskName === "air_quality" && isObject(p.estimates)) {
    const parts = Object.entries(p.estimates).map(([key, e]) => isObject(e)
      ? `${key} ${fixed(e.value, 2)} ${text(e.unit)}`.trim() : `${key} ${text(e)}`);
    return parts.join(", ") + (p.band ? ` — band ${text(p.band)}` : "");
  }
  const skip = new Set(["schema", "device", "task", "model", "ts", "ts_ms", "seq", "window",
    "valid", "reason", "timing_ms"]);
  const rest = Object.fromEntries(Object.entries(p).filter(([k]) => !skip.has(k)));
  return text(rest);
}

function eventText(msg) {
  const e = isObject(msg.event) ? msg.event : {};
  if (e.type === "keyword") return `keyword "${text(e.label)}" (${fixed(e.score, 2)})`;
  if (e.type === "vibration_alarm") {
    const detail = [`score ${fixed(e.anomaly_score, 3)}`];
    if (e.anomalous_windows) detail.push(text(e.anomalous_windows));
    return `vibration alarm ${text(e.state)} (${detail.join(", ")})`;
  }
  if (e.type === "band_changed") return `air-quality band ${text(e.from)} → ${text(e.to)}`;
  return text(e);
}

function isAlarm(taskName, msg) {
  const e = isObject(msg.event) ? msg.event : {};
  return e.type === "vibration_alarm" ? e.state === "raised" : false;
}

function onMessage(topic, payload) {
  messageCount += 1;
  const parts = topic.split("/");
  if (parts[0] !== "tinyfleet") return;
  const body = new TextDecoder().decode(payload);
  if (parts.length === 3 && parts[2] === "status") {
    device(parts[1]).status = body.trim() || "unknown";
    return;
  }
  if (parts.length !== 4) return;
  const [, deviceId, taskName, kind] = parts;
  let msg;
  try {
    msg = JSON.parse(body);
  } catch (err) {
    return; // not a tinyfleet JSON payload: ignore rather than break the page
  }
  if (!isObject(msg)) return; // every tinyfleet payload is a JSON object
  const t = task(device(deviceId), taskName);
  if (kind === "prediction") {
    t.last = msg;
    t.at = Date.now();
    if (typeof msg.alarm === "boolean") t.alarm = msg.alarm;
    if (isObject(msg.model)) t.model = msg.model;
  } else if (kind === "model") {
    t.model = msg;
  } else if (kind === "event") {
    if (isObject(msg.event) && msg.event.type === "vibration_alarm") {
      t.alarm = msg.event.state === "raised";
    }
    events.unshift({ at: text(msg.ts) || new Date().toISOString(), device: deviceId, task: taskName,
      text: eventText(msg), alarm: isAlarm(taskName, msg) });
    events.length = Math.min(events.length, MAX_EVENTS);
  } else if (kind === "health") {
    const status = String(msg.status || "unknown");
    const reasons = Array.isArray(msg.reasons) ? msg.reasons.map(String).join("; ") : "";
    t.health = status;
    events.unshift({ at: new Date(Number(msg.ts_ms) || Date.now()).toISOString(), device: deviceId,
      task: taskName, text: `health: ${status}${reasons ? " — " + reasons : ""}`,
      alarm: status !== "ok" });
    events.length = Math.min(events.length, MAX_EVENTS);
  }
}

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function byKey(a, b) {
  return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0;
}

function row(deviceId, dev, taskName, t, now) {
  const tr = document.createElement("tr");
  tr.dataset.device = deviceId;
  tr.dataset.task = taskName;
  if (t && t.alarm) tr.classList.add("alarm");
  if (dev.status === "offline") tr.classList.add("offline");
  cell(tr, deviceId);
  cell(tr, dev.status, `badge ${dev.status}`);
  cell(tr, taskName);
  const model = t && t.model ? `${text(t.model.name)} ${text(t.model.version)}`.trim() : "";
  cell(tr, model);
  cell(tr, t && t.last ? summary(taskName, t.last) : "", "prediction");
  cell(tr, t && t.last ? text(t.last.seq) : "");
  cell(tr, t && t.at ? `${Math.round((now - t.at) / 1000)} s` : "");
  cell(tr, t && t.alarm ? "ALARM" : "", "alarm-state");
  return tr;
}

function render() {
  const body = document.getElementById("device-rows");
  const rows = [];
  const now = Date.now();
  for (const [deviceId, dev] of [...devices.entries()].sort(byKey)) {
    const tasks = dev.tasks.size ? [...dev.tasks.entries()].sort(byKey) : [["—", null]];
    for (const [taskName, t] of tasks) {
      try {
        rows.push(row(deviceId, dev, taskName, t, now));
      } catch (err) { // defence in depth: one unreadable row must not hide the others
        const tr = document.createElement("tr");
        tr.dataset.device = deviceId;
        tr.dataset.task = taskName;
        cell(tr, deviceId);
        cell(tr, "unreadable message");
        rows.push(tr);
      }
    }
  }
  if (rows.length) body.replaceChildren(...rows);
  const list = document.getElementById("events");
  list.replaceChildren(...events.map((e) => {
    const li = document.createElement("li");
    li.textContent = `${e.at} ${e.device}/${e.task}: ${e.text}`;
    if (e.alarm) li.className = "alarm";
    return li;
  }));
  document.getElementById("message-count").textContent = String(messageCount);
}

function setConnection(text, ok) {
  const el = document.getElementById("connection");
  el.textContent = text;
  el.className = `state ${ok ? "ok" : "bad"}`;
}

function start() {
  const url = brokerUrl();
  document.getElementById("broker-url").textContent = url;
  const client = mqtt.connect(url, {
    clientId: `tinyfleet-view-${Math.random().toString(16).slice(2, 10)}`,
    clean: true,
    reconnectPeriod: 2000,
    connectTimeout: 5000,
  });
  client.on("connect", () => {
    setConnection("connected", true);
    client.subscribe(TOPICS, { qos: 1 });
  });
  client.on("reconnect", () => setConnection("reconnecting…", false));
  client.on("close", () => setConnection("disconnected", false));
  client.on("error", (err) => setConnection(`error: ${err.message}`, false));
  client.on("message", (topic, payload) => {
    onMessage(topic, payload);
    render();
  });
  setInterval(render, 1000); // keep the "age" column honest between messages
}

start();
