"""KWS trained on synthesized speech only, scored on every real clip of a Speech Commands folder.

The no-data default (``tinyfleet build kws``) through ``training.kws.train`` itself, with any preset
knob overridden; float and int8 accuracy on the folder's clips (``training.kws.evaluation_set``:
all clips, unknown words capped, cut background silence)::

    python benchmarks/kws_synth_only.py --preset quick --knob normalization='"per-coefficient"'
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEV = Path(os.environ.get("TINYFLEET_SPEECH_COMMANDS", "/work/shared/data/speech_commands_dev"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=("quick", "full"), default="quick")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--knob", nargs="*", default=[], help="preset knob as name=JSON")
    parser.add_argument("--label", default="synth-only")
    parser.add_argument("--out", type=Path, default=Path("/work/cache/kws/runs.jsonl"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    from device_sim.interpreter import Int8Model
    from quantize.convert import to_int8_tflite
    from training import kws
    from training.stage import TrainOptions

    knobs = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.knob)}
    options = TrainOptions(
        data=None, preset=args.preset, seed=args.seed, hyperparameters=tuple(knobs.items())
    )
    started = time.perf_counter()
    trained = kws.train(options)
    seconds = time.perf_counter() - started
    evaluation, described = kws.evaluation_set(trained.feature_config, DEV, args.seed)
    y = evaluation["y"]
    float_predicted = np.argmax(trained.model.predict(evaluation["x"], verbose=0), axis=1)
    flatbuffer = to_int8_tflite(trained.model, trained.representative)
    int8_predicted = np.argmax(Int8Model(flatbuffer).predict_batch(evaluation["x"]), axis=1)
    row = {
        "label": args.label,
        "preset": args.preset,
        "knobs": knobs,
        "evaluated_on": described,
        "n": int(len(y)),
        "real_float": round(float(np.mean(float_predicted == y)), 4),
        "real_int8": round(float(np.mean(int8_predicted == y)), 4),
        "synthetic_heldout_float": round(trained.metrics_float["accuracy"], 4),
        "train_seconds": round(seconds, 1),
        "tflite_bytes": len(flatbuffer),
    }
    print(json.dumps(row), flush=True)
    with args.out.open("a") as handle:
        handle.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
