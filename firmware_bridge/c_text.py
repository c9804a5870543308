"""Small helpers every C generator shares: identifiers, literals and arrays in C99 syntax.

Float constants are printed with 9 significant digits, enough to round-trip any float32 exactly, so
a C front end built from these tables computes with the very same coefficients as numpy.
"""

from __future__ import annotations

import math
import re

import numpy as np

_IDENTIFIER = re.compile(r"[^0-9A-Za-z_]")


def c_identifier(name: str) -> str:
    """``name`` made into a valid C identifier (other characters become ``_``)."""
    ident = _IDENTIFIER.sub("_", name)
    if not ident or ident[0].isdigit():
        ident = f"_{ident}"
    return ident


def header_guard(file_name: str) -> str:
    return "TINYFLEET_" + c_identifier(file_name).upper() + "_"


def c_float(value: float) -> str:
    """A float32 literal that round-trips exactly (``1.5f``, ``-3.0e-07f``)."""
    value = float(np.float32(value))
    if not math.isfinite(value):
        raise ValueError(f"cannot write the non-finite constant {value} into C code")
    text = f"{value:.9g}"
    if "e" not in text and "." not in text:
        text += ".0"
    return text + "f"


def c_string(text: str) -> str:
    """A C string literal; non-ASCII characters become UTF-8 octal escapes."""
    out = []
    for byte in str(text).encode("utf-8"):
        char = chr(byte)
        if char in '"\\':
            out.append("\\" + char)
        elif 32 <= byte < 127:
            out.append(char)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def float_array(
    name: str, values: np.ndarray, *, per_line: int = 6, qualifier: str = "static"
) -> str:
    """``static const float name[N] = {...};`` (flattened row-major); comment gives the shape."""
    values = np.asarray(values, dtype=np.float32)
    flat = values.reshape(-1)
    lines = []
    for start in range(0, len(flat), per_line):
        lines.append("    " + ", ".join(c_float(v) for v in flat[start : start + per_line]) + ",")
    shape = " x ".join(str(n) for n in values.shape) or "scalar"
    prefix = f"{qualifier} " if qualifier else ""
    body = "\n".join(lines) if lines else "    0.0f,"
    return f"/* {shape}, row-major */\n{prefix}const float {name}[{max(len(flat), 1)}] = {{\n{body}\n}};\n"


def int_array(name: str, values, *, ctype: str = "int16_t", per_line: int = 12) -> str:
    """``static const <ctype> name[N] = {...};`` for index tables."""
    flat = [int(v) for v in np.asarray(values).reshape(-1)]
    lines = []
    for start in range(0, len(flat), per_line):
        lines.append("    " + ", ".join(str(v) for v in flat[start : start + per_line]) + ",")
    body = "\n".join(lines) if lines else "    0,"
    return f"static const {ctype} {name}[{max(len(flat), 1)}] = {{\n{body}\n}};\n"
