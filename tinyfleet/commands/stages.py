"""Pipeline stages: ``train``, ``quantize``, ``build`` (all stages in one go) and ``evaluate``.

TensorFlow is imported inside the handlers only, so ``tinyfleet --help`` and the device commands
work on an install without the ``train`` extra.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

from device_sim.bundle import load_bundle
from device_sim.errors import ConfigError, TinyfleetError
from device_sim.tasks import task_names
from tinyfleet.commands.task_options import task_option_help
from tinyfleet.output import add_json_flag, emit, render_mapping

log = logging.getLogger(__name__)


def _need_training_extra() -> None:
    try:
        import training.keras_env  # noqa: F401  (TensorFlow, tfmot and tf_keras, quietly)
    except ImportError as exc:
        raise TinyfleetError(
            f"this command needs the training extra ({exc.name} is missing): "
            "pip install 'tinyfleet[train]'"
        ) from exc


def _column_map(pairs: list[str]) -> tuple[tuple[str, str], ...]:
    result = []
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"--column expects SOURCE=CANONICAL, got {pair!r}")
        source, canonical = pair.split("=", 1)
        result.append((source.strip(), canonical.strip()))
    return tuple(result)


def _add_train_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task", choices=task_names(), help="which micromodel")
    parser.add_argument(
        "--data",
        type=Path,
        help="dataset: a Speech Commands-style folder (kws), a folder/file of recordings "
        "(vibration), a UCI or generic CSV (air_quality). Default: the built-in simulator or "
        "synthesized speech — nothing is downloaded",
    )
    parser.add_argument(
        "--preset",
        choices=("quick", "full"),
        default="quick",
        help="quick: minutes on 2 cores, for demos and tests; full: the real model",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed, recorded in the bundle")
    parser.add_argument("--out", type=Path, help="bundle folder (default artifacts/<task>)")
    parser.add_argument(
        "--sample-rate",
        type=float,
        help="recordings' sample rate in Hz when the files do not say (vibration)",
    )
    parser.add_argument(
        "--synth",
        action="store_true",
        help=task_option_help("--synth"),
    )
    parser.add_argument("--channel", help=task_option_help("--channel", " (default: *_DE_time)"))
    parser.add_argument(
        "--column",
        action="append",
        default=[],
        metavar="SOURCE=CANONICAL",
        help=task_option_help("--column"),
    )
    parser.add_argument(
        "--teacher",
        type=Path,
        help="distil from a teacher bundle folder or Keras model file; kws: `speech-embedding` "
        "distils from Google's speech embedding (needs the train extra)",
    )
    parser.add_argument(
        "--all-speakers",
        action="store_true",
        help=task_option_help("--all-speakers"),
    )
    add_json_flag(parser)


def _options(args: argparse.Namespace):
    from training.stage import TrainOptions

    if args.data is not None and not args.data.exists():
        raise ConfigError(f"--data {args.data} does not exist")
    return TrainOptions(
        data=args.data,
        preset=args.preset,
        seed=args.seed,
        sample_rate=args.sample_rate,
        synth=args.synth,
        channel=args.channel,
        column_map=_column_map(args.column),
        teacher=args.teacher,
        hyperparameters=(("holdout", 0),) if getattr(args, "all_speakers", False) else (),
    )


def _out_dir(args: argparse.Namespace) -> Path:
    return args.out or Path("artifacts") / args.task


def run_train(args: argparse.Namespace) -> int:
    _need_training_extra()
    from training.tasks import task_module

    started = time.perf_counter()
    trained = task_module(args.task).train(_options(args))
    trained.provenance.setdefault("train_seconds", round(time.perf_counter() - started, 1))
    out = trained.save(_out_dir(args))
    result = {
        "trained": str(out),
        "float": trained.metrics_float,
        "sparsity": trained.sparsity.get("overall"),
    }
    emit(result, args.json, render_mapping)
    return 0


def run_quantize(args: argparse.Namespace) -> int:
    _need_training_extra()
    from quantize.stage import quantize_trained
    from training.stage import TrainedModel

    bundle = quantize_trained(TrainedModel.load(args.bundle), args.out or args.bundle, qat=args.qat)
    emit(_summary(bundle), args.json, render_mapping)
    return 0


def _summary(bundle) -> dict[str, Any]:
    int8 = bundle.metrics.get("int8", {})
    return {
        **int8,
        "float": bundle.metrics.get("float", {}),
        "bundle": str(bundle.directory),
        "model": bundle.identity(),
        "sizes": bundle.sizes,
        "sparsity": bundle.sparsity.get("overall"),
    }


def run_build(args: argparse.Namespace) -> int:
    from pipeline.build import build

    _need_training_extra()
    bundle = build(
        args.task, _options(args), _out_dir(args), export=not args.no_export, target=args.target
    )
    emit(_summary(bundle), args.json, render_mapping)
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from training.stage import TrainOptions
    from training.tasks import task_module

    bundle = load_bundle(args.bundle)
    if args.data is not None and not args.data.exists():
        raise ConfigError(f"--data {args.data} does not exist")
    options = TrainOptions(
        data=args.data,
        sample_rate=args.sample_rate,
        channel=args.channel,
        column_map=_column_map(args.column),
        seed=args.seed,
    )
    result = task_module(bundle.task).evaluate(bundle, args.data, options)
    emit(result, args.json, render_mapping)
    return 0


def _add_qat_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--qat",
        action="store_true",
        help="when post-training int8 loses more than the task's tolerance, try "
        "quantization-aware training and keep it only if it scores better",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train",
        help="train and prune a float model (writes the training artifacts)",
        description="Build the task's dataset, train its Keras model with pruning and write the "
        "float model, calibration and held-out evaluation data into the bundle folder.",
    )
    _add_train_options(train)
    train.set_defaults(func=run_train)

    quantize = subparsers.add_parser(
        "quantize",
        help="convert a trained model to an int8 bundle and compare float vs int8",
        description="Full-integer int8 conversion with a representative dataset from the training "
        "data; writes model.tflite and bundle.json and reports float vs int8 metrics.",
    )
    quantize.add_argument("--bundle", type=Path, required=True, help="folder written by `train`")
    quantize.add_argument("--out", type=Path, help="bundle folder (default: the same folder)")
    _add_qat_flag(quantize)
    add_json_flag(quantize)
    quantize.set_defaults(func=run_quantize)

    build_parser = subparsers.add_parser(
        "build",
        help="train + prune + int8 + firmware export in one go",
        description="The whole training side for one task: dataset → model → prune → int8 bundle → "
        "firmware files. With --json prints the int8 model's evaluation metrics.",
    )
    _add_train_options(build_parser)
    build_parser.add_argument(
        "--target", choices=("c", "cpp", "arduino"), default="c", help="firmware export flavour"
    )
    build_parser.add_argument("--no-export", action="store_true", help="skip the firmware export")
    _add_qat_flag(build_parser)
    build_parser.set_defaults(func=run_build)

    evaluate = subparsers.add_parser(
        "evaluate",
        help="evaluate an int8 bundle on a dataset",
        description="Run the bundle's int8 model (as the device does) on a dataset and print its "
        "metrics; plots (confusion matrix, ROC …) are written beside the bundle.",
    )
    evaluate.add_argument("--bundle", type=Path, required=True)
    evaluate.add_argument("--data", type=Path, help="dataset (default: the task's simulator)")
    evaluate.add_argument("--sample-rate", type=float, help="recordings' rate in Hz if unstated")
    evaluate.add_argument("--channel", help=task_option_help("--channel"))
    evaluate.add_argument("--column", action="append", default=[], metavar="SOURCE=CANONICAL")
    evaluate.add_argument("--seed", type=int, default=1, help="seed for simulated evaluation data")
    add_json_flag(evaluate)
    evaluate.set_defaults(func=run_evaluate)
