"""Soak: a fleet of simulated devices publishing for minutes; memory must stay flat, nothing lost.

Runs mosquitto, one subscriber process and ``tinyfleet simulate`` (a separate process, as users
run it), samples the resident memory (RSS, from /proc) of the device and subscriber processes every
few seconds, and checks at the end that the subscriber received every prediction exactly once.

    python benchmarks/soak.py --bundle artifacts/air_quality --devices 200 --minutes 10 [--json]

Growth is measured from the end of the warm-up (the first 20 % of the run: imports, interpreter
allocation, SQLite caches) to the median of the last quarter; the target is < 10 %.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fleet import SubscriberProcess  # noqa: E402

from ops.broker import MosquittoBroker  # noqa: E402


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def growth(samples: list[tuple[float, float]], duration: float) -> dict[str, float | None]:
    """RSS after warm-up vs the median of the last quarter of the run."""
    warm = [rss for t, rss in samples if t >= 0.2 * duration]
    late = [rss for t, rss in samples if t >= 0.75 * duration]
    if not warm or not late:
        return {"after_warmup_mb": None, "last_quarter_mb": None, "growth_pct": None}
    start, end = warm[0], statistics.median(late)
    return {
        "after_warmup_mb": round(start, 1),
        "last_quarter_mb": round(end, 1),
        "peak_mb": round(max(rss for _, rss in samples), 1),
        "growth_pct": round(100 * (end - start) / start, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--bundle", type=Path, action="append", help="bundle folder (default artifacts/*)"
    )
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=1.0, help="windows/s per device per task")
    parser.add_argument("--interval", type=float, default=5.0, help="RSS sampling period (s)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    args.bundle = args.bundle or sorted(p.parent for p in Path("artifacts").glob("*/bundle.json"))
    if not args.bundle:
        print("soak: no bundles (pass --bundle DIR or build into artifacts/); nothing to soak")
        return 0
    duration = args.minutes * 60
    with tempfile.TemporaryDirectory() as tmp, MosquittoBroker(Path(tmp) / "broker") as broker:
        subscriber = SubscriberProcess(broker.url, idle_s=10, keep_latencies=False)
        bundles = [arg for path in args.bundle for arg in ("--bundles", str(path))]
        command = [
            sys.executable, "-m", "tinyfleet.cli", "-q", "simulate",
            "--devices", str(args.devices), *bundles, "--broker", broker.url,
            "--rate", str(args.rate), "--duration", str(duration), "--qos", "1",
            "--state-dir", str(Path(tmp) / "state"), "--json",
        ]  # fmt: skip
        fleet = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        samples: dict[str, list[tuple[float, float]]] = {"devices": [], "subscriber": []}
        started = time.monotonic()
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(args.interval):
                elapsed = time.monotonic() - started
                for name, pid in (("devices", fleet.pid), ("subscriber", subscriber.process.pid)):
                    value = rss_mb(pid)
                    if value is not None:
                        samples[name].append((elapsed, value))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        out, _ = fleet.communicate(timeout=duration + 300)
        stop.set()
        received = subscriber.result()
    report = json.loads(out)
    published = report["published"]["predictions"]
    result = {
        "devices": args.devices,
        "minutes": args.minutes,
        "rate_hz_per_device": args.rate,
        "published": published,
        "received_unique": received["unique"],
        "lost": published - received["unique"],
        "duplicates": received["duplicates"],
        "reconnects": report["reconnects"],
        "rss_devices": growth(samples["devices"], duration),
        "rss_subscriber": growth(samples["subscriber"], duration),
    }
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
