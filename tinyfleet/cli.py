"""The ``tinyfleet`` command line: one sub-command per stage or tool.

Each module in :mod:`tinyfleet.commands` adds its sub-commands with ``register(subparsers)`` and sets
``func`` on its parser. User errors (:class:`~device_sim.errors.TinyfleetError`) are caught here,
once: the message is printed to stderr and the exit status is 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

# Before numpy is imported (the command modules import it): a simulated fleet is parallel by
# processes, and OpenBLAS threads on top of it spin against each other — measured 8x the CPU for
# the vibration front end's matmul with 2 BLAS threads on a busy 2-core machine.
if {"simulate", "device", "subscribe"} & set(sys.argv[1:3]):
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from device_sim.errors import TinyfleetError  # noqa: E402
from device_sim.version import __version__  # noqa: E402
from tinyfleet.output import setup_logging  # noqa: E402

COMMAND_MODULES = (
    "stages",
    "firmware",
    "fleet",
    "security",
    "optimize",
    "demo",
    "calibrate",
    "monitor",
)

DESCRIPTION = """\
tinyfleet: tiny ML micromodels from training to a fleet of MQTT devices.

  dataset ─▶ Keras model ─▶ prune ─▶ int8 .tflite ─▶ bundle ─▶ C export / TFLM check
  sensor source ─▶ front end ─▶ interpreter ─▶ publisher ─▶ MQTT broker ─▶ subscribers

Tasks: {tasks}.
Start with `tinyfleet build vibration --out artifacts/vibration` or `tinyfleet demo`.
"""


def build_parser() -> argparse.ArgumentParser:
    from tinyfleet.commands.task_options import tasks_line

    parser = argparse.ArgumentParser(
        prog="tinyfleet",
        description=DESCRIPTION.format(tasks=tasks_line()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"tinyfleet {__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="INFO records and TensorFlow's native logs on stderr (-vv: debug)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="only errors, no progress")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"tinyfleet.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(-1 if args.quiet else args.verbose, as_json=getattr(args, "json", False))
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        status = args.func(args)
    except TinyfleetError as exc:
        print(f"tinyfleet {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        logging.getLogger(__name__).warning("interrupted")
        return 130
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
