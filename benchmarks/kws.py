"""KWS figures: accuracy on held-out real speakers, synthetic-to-real transfer, size, MACs, arena, speed.

Runs (each a full ``build`` with the chosen preset; CPU-heavy, run once):

* ``dev``        train on the dev folder's training speakers, test int8 on its held-out speakers;
* ``dev+synth``  the same with the synthesized corpus added to training (``--synth``);
* ``synth``      train on synthesized speech only, test int8 on *all* real dev clips.

Plus the front end's speed against librosa computing the same MFCCs (median of many windows).

    .venv/bin/python benchmarks/kws.py                    # all runs, full preset
    .venv/bin/python benchmarks/kws.py --runs synth --preset quick --json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from device_sim.features.audio import LogMelConfig, MfccConfig  # noqa: E402

# A Speech Commands-style folder; override with $TINYFLEET_SPEECH_COMMANDS.
DEV = Path(os.environ.get("TINYFLEET_SPEECH_COMMANDS", "/work/shared/data/speech_commands_dev"))
RUNS = ("dev", "dev+synth", "synth")


def frontend_speed(repeats: int = 300) -> dict[str, float]:
    """Median µs per 1 s window: ours vs librosa (same window, mel matrix and DCT)."""
    import librosa

    rng = np.random.default_rng(0)
    window = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    config = MfccConfig()
    ours = config.build()
    lm = LogMelConfig()

    def reference(x: np.ndarray) -> np.ndarray:
        return librosa.feature.mfcc(
            y=np.pad(x, (16, 0)),
            sr=16000,
            n_mfcc=10,
            n_fft=512,
            hop_length=320,
            win_length=480,
            window="hann",
            center=False,
            n_mels=lm.n_mels,
            fmin=lm.fmin_hz,
            fmax=lm.fmax_hz,
            htk=True,
            power=1.0,
        )

    def median_us(function) -> float:
        function(window)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            function(window)
            times.append(time.perf_counter() - started)
        return statistics.median(times) * 1e6

    ours_us, librosa_us = median_us(ours), median_us(reference)
    return {
        "ours_us": round(ours_us, 1),
        "librosa_us": round(librosa_us, 1),
        "speedup": round(librosa_us / ours_us, 2),
    }


def stream_figures(bundle_dir: Path, seed: int = 0, threshold: float | None = None) -> dict:
    """Detection on a continuous stream, as on the device: the held-out dev speakers' clips played
    back-to-back with 1 s quiet gaps, a window every hop, smoothing + debouncing.

    A keyword clip is *detected* when an event with its label fires while its audio is in the
    window (its start … its end + 1 s); any other event is a false alarm.
    """
    from device_sim.bundle import load_bundle
    from device_sim.features import frontend_from_dict
    from device_sim.interpreter import Int8Model
    from device_sim.sources.kws import playlist
    from device_sim.tasks import runtime_for
    from training.kws.speech_commands import KEYWORDS, scan_folder

    bundle = load_bundle(bundle_dir)
    if threshold is not None:
        detection = {**bundle.extra.get("detection", {}), "threshold": threshold}
        bundle = dataclasses.replace(bundle, extra={**bundle.extra, "detection": detection})
    clips = scan_folder(DEV).split("testing")
    order = np.random.default_rng(seed).permutation(len(clips))
    clips = [clips[i] for i in order]
    audio, starts = playlist([c.path for c in clips], 16000, seed=seed)
    frontend = frontend_from_dict(bundle.feature_config)
    model = Int8Model.from_bundle(bundle)
    runtime = runtime_for(bundle)
    events = []
    end = frontend.window_samples
    while end <= len(audio):
        features = frontend(audio[end - frontend.window_samples : end])
        result = runtime.process(model.predict(features), features)
        if result.event:
            events.append((end, result.event["label"]))
        end += runtime.hop_samples
    detected, used = 0, set()
    n_keywords = sum(c.label in KEYWORDS for c in clips)
    for (start, _), clip in zip(starts, clips, strict=True):
        if clip.label not in KEYWORDS:
            continue
        for i, (at, label) in enumerate(events):
            if i not in used and label == clip.label and start < at <= start + 32000:
                detected += 1
                used.add(i)
                break
    false_alarms = len(events) - len(used)
    hours = len(audio) / 16000 / 3600
    non_keyword_spans = [
        (start, start + 32000)
        for (start, _), clip in zip(starts, clips, strict=True)
        if clip.label not in KEYWORDS
    ]
    on_non_keywords = sum(
        any(a < at <= b for a, b in non_keyword_spans)
        for i, (at, _) in enumerate(events)
        if i not in used
    )
    return {
        "threshold": runtime.detector.threshold,
        "stream_clips": len(clips),
        "stream_keyword_clips": n_keywords,
        "detection_rate": round(detected / max(1, n_keywords), 3),
        "false_alarms": false_alarms,
        "false_alarms_per_hour": round(false_alarms / hours, 1),
        "false_alarms_on_unknown_or_silence": on_non_keywords,
        "stream_minutes": round(hours * 60, 1),
    }


def noise_false_alarms(bundle_dir: Path) -> dict:
    """Events fired on the dataset's ``_background_noise_`` recordings (no speech in them, apart
    from the running tap and machines), played back to back through the device's detector:
    every event is a false alarm. Returns the count and the rate per hour of noise."""
    from device_sim.bundle import load_bundle
    from device_sim.features import frontend_from_dict
    from device_sim.interpreter import Int8Model
    from device_sim.tasks import runtime_for
    from training.kws.speech_commands import load_background, scan_folder

    bundle = load_bundle(bundle_dir)
    frontend = frontend_from_dict(bundle.feature_config)
    model = Int8Model.from_bundle(bundle)
    runtime = runtime_for(bundle)
    events, samples = [], 0
    for noise in load_background(scan_folder(DEV).background):
        samples += len(noise)
        end = frontend.window_samples
        while end <= len(noise):
            features = frontend(noise[end - frontend.window_samples : end])
            result = runtime.process(model.predict(features), features)
            if result.event:
                events.append(result.event["label"])
            end += runtime.hop_samples
    hours = samples / 16000 / 3600
    return {
        "noise_minutes": round(hours * 60, 1),
        "noise_false_alarms": len(events),
        "noise_false_alarms_per_hour": round(len(events) / hours, 1),
        "noise_false_alarm_labels": sorted(set(events)),
    }


def build_run(name: str, preset: str, seed: int, out: Path) -> dict:
    from device_sim.bundle import load_bundle
    from firmware_bridge.arena import measure_arena
    from pipeline.build import build
    from training import kws
    from training.stage import TrainOptions

    options = TrainOptions(
        data=None if name == "synth" else DEV, synth=name == "dev+synth", preset=preset, seed=seed
    )
    started = time.perf_counter()
    bundle = build("kws", options, out, export=False)
    seconds = time.perf_counter() - started
    bundle = load_bundle(out)
    arena = measure_arena(bundle.model_path)
    result = {
        "run": name,
        "preset": preset,
        "float_accuracy": bundle.metrics["float"]["accuracy"],
        "int8_accuracy": bundle.metrics["int8"]["accuracy"],
        "eval_clips": bundle.metrics["int8"]["n"],
        "eval_on": "held-out synthetic voices" if name == "synth" else "held-out dev speakers",
        "per_class_int8": bundle.metrics["int8"]["per_class"],
        "tflite_bytes": bundle.sizes["tflite_bytes"],
        "tflite_gzip_bytes": bundle.sizes["tflite_gzip_bytes"],
        "parameters": bundle.sizes["parameters"],
        "macs": bundle.extra["macs"],
        "arena_bytes": arena.arena_bytes,
        "sparsity": round(bundle.sparsity["overall"], 3),
        "build_seconds": round(seconds, 1),
        "fit_seconds": bundle.provenance.get("fit_seconds"),
        "data_seconds": bundle.provenance.get("data_seconds"),
        "train_data": bundle.provenance.get("data"),
    }
    if name != "synth":
        result["stream"] = stream_figures(out, seed)
    if name == "synth":
        real = kws.evaluate(bundle, DEV, TrainOptions(seed=seed))
        result["int8_accuracy_real_dev_all_clips"] = real["accuracy"]
        result["real_dev_clips"] = real["n"]
        result["per_class_real"] = real["per_class"]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", choices=RUNS, default=list(RUNS))
    parser.add_argument("--preset", choices=("quick", "full"), default="full")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="keep the bundles here (default: a temp folder)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--stream-only",
        type=Path,
        metavar="BUNDLE",
        help="only the streaming detection figures of an existing bundle (trained on dev speakers)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.stream_only:
        print(json.dumps(noise_false_alarms(args.stream_only)))
        for threshold in (0.5, 0.6, 0.7, 0.8):
            print(json.dumps(stream_figures(args.stream_only, args.seed, threshold)))
        return 0

    figures: dict = {"frontend": frontend_speed(), "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        for name in args.runs:
            result = build_run(name, args.preset, args.seed, root / name.replace("+", "_"))
            figures["runs"].append(result)
            if not args.json:
                print(
                    f"{name:10s} int8 {result['int8_accuracy']:.3f} float "
                    f"{result['float_accuracy']:.3f} on {result['eval_clips']} "
                    f"({result['eval_on']})"
                    + (
                        f"; real dev {result['int8_accuracy_real_dev_all_clips']:.3f} on "
                        f"{result['real_dev_clips']} clips"
                        if name == "synth"
                        else ""
                    )
                    + f" | {result['tflite_bytes']} B flatbuffer, {result['macs']:,} MACs, "
                    f"arena {result['arena_bytes']} B, build {result['build_seconds']} s "
                    f"(fit {result['fit_seconds']} s)",
                    flush=True,
                )
    if args.json:
        print(json.dumps(figures))
    else:
        fe = figures["frontend"]
        print(
            f"front end: {fe['ours_us']} µs/window vs librosa {fe['librosa_us']} µs "
            f"({fe['speedup']}× faster), median of 300"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
