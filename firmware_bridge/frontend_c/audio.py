"""C99 port of the ``log_mel``/``mfcc`` front ends (device_sim/features/audio.py).

Per frame (``frame_samples`` every ``hop_samples``): × periodic Hann window, zero-pad to
``fft_length``, FFT, magnitude (``** spectrum_power``), triangular mel filters, ``ln(· + log_floor)``,
for ``mfcc`` the orthonormal DCT-II, and the
per-coefficient standardisation ``(f - norm_mean) * norm_scale`` when the bundle was trained so. The mel filterbank is stored sparsely — each filter's first
bin and its non-zero weights — as TFLM's micro_speech does: a dense 257 × 40 matrix would be 41 KB of
flash, the sparse one is about 2 KB. Output layout is the model's: frames × coefficients, row-major.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from device_sim.features import feature_config_from_dict
from firmware_bridge.c_text import c_float, float_array, int_array
from firmware_bridge.errors import FirmwareError
from firmware_bridge.frontend_c import FrontEndC, header_text
from firmware_bridge.frontend_c.fft import FFT_CODE, fft_tables

KINDS = ("log_mel", "mfcc")  # the feature kinds this module ports to C

_CODE = """\
static float tf_re[TF_FFT_N];
static float tf_im[TF_FFT_N];
static float tf_mel[TF_MELS];

int tinyfleet_frontend_frame(const float *frame, float *row)
{
    int t, m, c;
    for (t = 0; t < TF_FFT_N; ++t) {
        if (t < TF_FRAME && !isfinite(frame[t])) {
            return 1;
        }
        tf_re[t] = t < TF_FRAME ? frame[t] * tf_window[t] : 0.0f;
        tf_im[t] = 0.0f;
    }
    tf_fft(tf_re, tf_im);
    for (t = 0; t < TF_BINS; ++t) {
        const float power = tf_re[t] * tf_re[t] + tf_im[t] * tf_im[t];
#if TF_POWER_MODE == 1
        tf_re[t] = sqrtf(power);
#elif TF_POWER_MODE == 2
        tf_re[t] = power;
#else
        tf_re[t] = powf(sqrtf(power), TF_SPECTRUM_POWER);
#endif
    }
    for (m = 0; m < TF_MELS; ++m) {
        float energy = 0.0f;
        const int first = tf_mel_first[m];
        const int offset = tf_mel_offset[m];
        for (t = 0; t < tf_mel_count[m]; ++t) {
            energy += tf_re[first + t] * tf_mel_weight[offset + t];
        }
        tf_mel[m] = logf(energy + TF_LOG_FLOOR);
    }
#if TF_MFCC
    for (c = 0; c < TF_COEFFS; ++c) {
        float sum = 0.0f;
        for (m = 0; m < TF_MELS; ++m) {
            sum += tf_mel[m] * tf_dct[m * TF_COEFFS + c];
        }
        row[c] = sum;
    }
#else
    for (c = 0; c < TF_COEFFS; ++c) {
        row[c] = tf_mel[c];
    }
#endif
#if TF_NORM
    for (c = 0; c < TF_COEFFS; ++c) {
        row[c] = (row[c] - tf_norm_mean[c]) * tf_norm_scale[c];
    }
#endif
    return 0;
}

int tinyfleet_frontend(const float *window, float *features)
{
    int frame;
    for (frame = 0; frame < TF_FRAMES; ++frame) {
        if (tinyfleet_frontend_frame(window + frame * TF_HOP, features + frame * TF_COEFFS) != 0) {
            return 1;
        }
    }
    return 0;
}

/* Streaming: the newest frame starts TF_TAIL samples before the end of the window. */
#define TF_TAIL (TF_WINDOW - (TF_FRAMES - 1) * TF_HOP)
static float tf_tail[TF_TAIL];
static long tf_pushed;

int tinyfleet_frontend_push(const float *hop, float *features)
{
    int t;
    if (TF_TAIL > TF_HOP) {
        memmove(tf_tail, tf_tail + TF_HOP, sizeof(float) * (TF_TAIL - TF_HOP));
        memcpy(tf_tail + TF_TAIL - TF_HOP, hop, sizeof(float) * TF_HOP);
    } else {
        memcpy(tf_tail, hop + TF_HOP - TF_TAIL, sizeof(float) * TF_TAIL);
    }
    memmove(features, features + TF_COEFFS, sizeof(float) * (TF_FRAMES - 1) * TF_COEFFS);
    for (t = 0; t < TF_HOP; ++t) {
        if (!isfinite(hop[t])) {
            tf_pushed = 0; /* refill a clean window before the features count again */
            return 1;
        }
    }
    if (tinyfleet_frontend_frame(tf_tail, features + (TF_FRAMES - 1) * TF_COEFFS) != 0) {
        tf_pushed = 0;
        return 1;
    }
    if (tf_pushed < TF_WINDOW) {
        tf_pushed += TF_HOP;
    }
    return tf_pushed >= TF_WINDOW ? 0 : 2;
}

void tinyfleet_frontend_reset(void)
{
    int t;
    for (t = 0; t < TF_TAIL; ++t) {
        tf_tail[t] = 0.0f;
    }
    tf_pushed = 0;
}
"""

_STREAMING = """\
/* Streaming (what main.cc does; saves the whole-window buffer): call tinyfleet_frontend_push()
 * with every TINYFLEET_FE_HOP_SAMPLES new samples. It shifts `features` (the model input matrix,
 * oldest frame first) up one row and computes the newest row from the last
 * TINYFLEET_FE_TAIL_SAMPLES samples it keeps. Once TINYFLEET_FE_WINDOW_SAMPLES samples have been
 * pushed, `features` equals tinyfleet_frontend() on the last window. Returns 0 then, 2 while the
 * first window is still filling, 1 when a sample is NaN/Inf. tinyfleet_frontend_frame() computes
 * one row from TINYFLEET_FE_FRAME_SAMPLES samples. */
#define TINYFLEET_FE_STREAMING 1
#define TINYFLEET_FE_FRAME_SAMPLES {frame}
#define TINYFLEET_FE_HOP_SAMPLES {hop}
#define TINYFLEET_FE_PUSH_VALUES {hop}
#define TINYFLEET_FE_NOT_READY 2
#define TINYFLEET_FE_AUDIO 1
#define TINYFLEET_FE_TAIL_SAMPLES {tail}
#define TINYFLEET_FE_ROW_FEATURES {coeffs}
int tinyfleet_frontend_push(const float *hop, float *features);
void tinyfleet_frontend_reset(void);
int tinyfleet_frontend_frame(const float *frame, float *row);"""


def _sparse_filters(mel_matrix: np.ndarray) -> tuple[list[int], list[int], list[int], np.ndarray]:
    """(first bin, count, offset into weights) per filter and the concatenated weights."""
    first, count, offset, weights = [], [], [], []
    for column in mel_matrix.T:
        bins = np.flatnonzero(column)
        start = int(bins[0]) if len(bins) else 0
        stop = int(bins[-1]) + 1 if len(bins) else 0
        first.append(start)
        count.append(stop - start)
        offset.append(len(weights))
        weights.extend(column[start:stop].tolist())
    return first, count, offset, np.asarray(weights or [0.0], dtype=np.float32)


def generate(config_dict: dict[str, Any]) -> FrontEndC:
    """The C front end for a ``log_mel`` or ``mfcc`` config dict."""
    config = feature_config_from_dict(config_dict)
    frontend = config.build()
    n = config.fft_length
    if n & (n - 1):
        raise FirmwareError(f"the C audio front end needs a power-of-two fft_length, got {n}")
    first, count, offset, weights = _sparse_filters(frontend.mel_matrix)
    is_mfcc = frontend.dct_matrix is not None
    coeffs = config.n_coefficients()
    features = config.n_frames * coeffs
    power = float(config.spectrum_power)
    mode = 1 if power == 1.0 else 2 if power == 2.0 else 0
    fft_text, fft_bytes = fft_tables(n)
    notes = (
        f" * window: {config.window_samples} mono samples in [-1, 1] at {config.sample_rate} Hz "
        f"({config.clip_ms} ms).\n"
        f" * features: {config.n_frames} frames x {coeffs} {config.kind} coefficients, row-major.\n"
        " * Returns 1 when a sample is NaN/Inf."
    )
    tail = config.window_samples - (config.n_frames - 1) * config.hop_samples
    streaming = _STREAMING.format(
        frame=config.frame_samples, hop=config.hop_samples, tail=tail, coeffs=coeffs
    )
    header = header_text(config.kind, config.window_samples, 1, features, notes, streaming)
    parts = [
        f"#define TF_WINDOW {config.window_samples}\n#define TF_FRAME {config.frame_samples}\n",
        f"#define TF_HOP {config.hop_samples}\n#define TF_FRAMES {config.n_frames}\n",
        f"#define TF_BINS {n // 2 + 1}\n#define TF_MELS {config.n_mels}\n",
        f"#define TF_COEFFS {coeffs}\n#define TF_MFCC {int(is_mfcc)}\n",
        f"#define TF_POWER_MODE {mode}\n#define TF_SPECTRUM_POWER {c_float(power)}\n",
        f"#define TF_LOG_FLOOR {c_float(config.log_floor)}\n",
        fft_text,
        float_array("tf_window", frontend.window),
        int_array("tf_mel_first", first),
        int_array("tf_mel_count", count),
        int_array("tf_mel_offset", offset),
        float_array("tf_mel_weight", weights),
    ]
    table_bytes = fft_bytes + 4 * config.frame_samples + 3 * 2 * config.n_mels + 4 * len(weights)
    if is_mfcc:
        parts.append(float_array("tf_dct", frontend.dct_matrix))
        table_bytes += 4 * frontend.dct_matrix.size
    constants = frontend.constants()
    normalized = "norm_mean" in constants
    parts.append(f"#define TF_NORM {int(normalized)}\n")
    if normalized:
        parts.append(float_array("tf_norm_mean", constants["norm_mean"]))
        parts.append(float_array("tf_norm_scale", constants["norm_scale"]))
        table_bytes += 8 * coeffs
    source = (
        f"/* Generated by tinyfleet: C99 {config.kind} front end. Do not edit. */\n"
        '#include "tinyfleet_frontend.h"\n\n#include <math.h>\n#include <stdint.h>\n#include <string.h>\n\n'
        + "".join(parts)
        + "\n"
        + FFT_CODE
        + "\n"
        + _CODE
    )
    return FrontEndC(
        kind=config.kind,
        header=header,
        source=source,
        window_samples=config.window_samples,
        channels=1,
        features=features,
        table_bytes=table_bytes,
        buffer_bytes=4 * (2 * n + config.n_mels + tail) + 8,  # FFT, mel row, streaming tail
        streaming_window_bytes=4 * config.hop_samples,  # the caller's buffer of new samples
    )
