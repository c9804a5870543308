"""How commands report: one JSON object on stdout with ``--json``, readable text otherwise.

Logs always go to stderr so that ``tinyfleet CMD --json | jq`` works.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np


def _default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def emit(
    result: Mapping[str, Any], as_json: bool, render: Callable[[Mapping[str, Any]], str]
) -> None:
    """Print ``result`` as exactly one JSON object, or as ``render(result)`` for people."""
    if as_json:
        sys.stdout.write(json.dumps(result, default=_default, allow_nan=False) + "\n")
    else:
        sys.stdout.write(render(result).rstrip("\n") + "\n")
    sys.stdout.flush()


def render_mapping(result: Mapping[str, Any], indent: int = 0) -> str:
    """A plain indented rendering of nested figures, the default human output."""
    lines = []
    pad = "  " * indent
    for key, value in result.items():
        if isinstance(value, Mapping):
            lines.append(f"{pad}{key}:")
            lines.append(render_mapping(value, indent + 1))
        elif isinstance(value, float):
            lines.append(f"{pad}{key}: {value:.4g}")
        elif isinstance(value, list) and len(value) > 12:
            lines.append(f"{pad}{key}: [{len(value)} items]")
        else:
            lines.append(f"{pad}{key}: {value}")
    return "\n".join(line for line in lines if line)


def add_json_flag(parser) -> None:
    parser.add_argument(
        "--json", action="store_true", help="print exactly one JSON object on stdout (logs: stderr)"
    )


def setup_logging(verbosity: int, *, as_json: bool = False) -> None:
    """Warnings only by default; ``-v`` adds INFO records and TensorFlow's native logs, ``-vv``
    DEBUG. ``verbosity`` -1 (``-q``): errors only and no progress output.

    Progress (bars on a terminal, plain lines otherwise or with ``--json``) and the silencing of
    native logs are set here for this process and the workers it starts (device_sim.console).
    """
    from device_sim import console

    level = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    console.configure(
        console.mode_for(sys.stderr, as_json, quiet=verbosity < 0), native_logs=verbosity >= 1
    )
    if verbosity >= 2:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
