"""Operator tools, apart from the device: what runs beside the broker, not on a device.

* :mod:`ops.broker` — mosquitto process management (``tinyfleet broker``, tests, benchmarks);
* :mod:`ops.security` — the broker's certificate authority, users, password file and ACL;
* :mod:`ops.rollout` — the rollout sender (``tinyfleet rollout``), signing offers;
* :mod:`ops.subscriber`, :mod:`ops.store`, :mod:`ops.store_postgres` — predictions in, stored once;
* :mod:`ops.fleet_view` — the live fleet page and the static snapshot;
* :mod:`ops.monitor` — the drift and silence monitor (``tinyfleet monitor``).

Layering: ``ops`` imports the device runtime (``device_sim``) only — never training, quantize,
firmware_bridge, pipeline or tinyfleet — and ``device_sim`` never imports ``ops``.
"""
