"""C99 port of the ``vibration_bands`` front end (device_sim/features/vibration.py).

Per axis: remove the mean; band energies of the Hann-tapered spectrum relative to the window's total
(``log10(band / total + 1e-6)``); then the statistics in the config's order (``log10`` RMS,
``log10`` kurtosis, crest factor, ``log10`` kurtosis above ``hf_cutoff_hz`` with ``n/16`` samples
trimmed at each end); finally standardised with the bundle's mean/scale. A window with NaN/Inf,
clipped samples (|x| ≥ 99.9 % of full scale) or a flat axis is refused, as ``validate_window`` does.

Memory: one complex FFT buffer (2 × ``window_samples`` floats), reused axis by axis. Moments are
accumulated in double: kurtosis divides a 4th moment by a squared 2nd moment and float sums over
4096 samples lose digits there; it costs a few thousand double operations per window.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from device_sim.features import feature_config_from_dict
from device_sim.features.vibration import CLIP_FRACTION
from firmware_bridge.c_text import c_float, float_array, int_array
from firmware_bridge.errors import FirmwareError
from firmware_bridge.frontend_c import FrontEndC, header_text
from firmware_bridge.frontend_c.fft import FFT_CODE, fft_tables

_STAT_CODES = {"rms": 0, "kurtosis": 1, "crest": 2, "hf_kurtosis": 3}

_CODE = """\
static float tf_re[TF_N];
static float tf_im[TF_N];

/* Pearson kurtosis of tf_re[first..last) (mean removed here). */
static double tf_kurtosis(int first, int last)
{
    int t;
    double mean = 0.0, m2 = 0.0, m4 = 0.0;
    const double count = (double)(last - first);
    for (t = first; t < last; ++t) {
        mean += tf_re[t];
    }
    mean /= count;
    for (t = first; t < last; ++t) {
        const double c = tf_re[t] - mean;
        const double c2 = c * c;
        m2 += c2;
        m4 += c2 * c2;
    }
    m2 /= count;
    m4 /= count;
    return m4 / (m2 * m2 + 1e-12);
}

int tinyfleet_frontend(const float *window, float *features)
{
    int axis, t, b, s;
    for (axis = 0; axis < TF_AXES; ++axis) {
        double mean = 0.0, var = 0.0;
        for (t = 0; t < TF_N; ++t) {
            const float v = window[t * TF_AXES + axis];
            if (!isfinite(v)) {
                return 1;
            }
            if (fabsf(v) >= TF_CLIP_G) {
                return 2;
            }
            mean += v;
        }
        mean /= TF_N;
        for (t = 0; t < TF_N; ++t) {
            const double c = window[t * TF_AXES + axis] - mean;
            var += c * c;
        }
        if (var == 0.0) {
            return 3;
        }
    }
    for (axis = 0; axis < TF_AXES; ++axis) {
        float *out = features + axis * TF_PER_AXIS;
        double mean = 0.0, m2 = 0.0, peak = 0.0, total = 0.0;
        float rms;
        for (t = 0; t < TF_N; ++t) {
            mean += window[t * TF_AXES + axis];
        }
        mean /= TF_N;
        for (t = 0; t < TF_N; ++t) {
            const double c = window[t * TF_AXES + axis] - mean;
            m2 += c * c;
            if (fabs(c) > peak) {
                peak = fabs(c);
            }
            tf_re[t] = (float)c;
        }
        rms = (float)sqrt(m2 / TF_N);
        /* Band energies of the tapered spectrum, relative to their total. */
        for (t = 0; t < TF_N; ++t) {
            tf_im[t] = 0.0f;
            tf_re[t] *= tf_taper[t];
        }
        tf_fft(tf_re, tf_im);
        for (b = 0; b < TF_BANDS; ++b) {
            double energy = 0.0;
            for (t = tf_band_first[b]; t < tf_band_last[b]; ++t) {
                energy += (double)tf_re[t] * tf_re[t] + (double)tf_im[t] * tf_im[t];
            }
            out[b] = (float)energy;
            total += energy;
        }
        for (b = 0; b < TF_BANDS; ++b) {
            out[b] = (float)log10(out[b] / (total + 1e-12) + 1e-6);
        }
        for (s = 0; s < TF_STATS; ++s) {
            float value = 0.0f;
            switch (tf_stats[s]) {
            case 0:
                value = log10f(rms + 1e-6f);
                break;
            case 1:
                for (t = 0; t < TF_N; ++t) {
                    tf_re[t] = (float)(window[t * TF_AXES + axis] - mean);
                }
                value = (float)log10(tf_kurtosis(0, TF_N) + 1e-6);
                break;
            case 2:
                value = (float)(peak / (rms + 1e-9));
                break;
            default:
                /* Brick-wall high-pass of the untapered signal: FFT, zero bins below the cutoff
                 * (and their mirror images), inverse FFT via conjugation. */
                for (t = 0; t < TF_N; ++t) {
                    tf_re[t] = (float)(window[t * TF_AXES + axis] - mean);
                    tf_im[t] = 0.0f;
                }
                tf_fft(tf_re, tf_im);
                for (t = 0; t < TF_N; ++t) {
                    const int bin = t <= TF_N / 2 ? t : TF_N - t;
                    if (bin < TF_HF_FIRST_BIN) {
                        tf_re[t] = 0.0f;
                        tf_im[t] = 0.0f;
                    }
                    tf_im[t] = -tf_im[t];
                }
                tf_fft(tf_re, tf_im);
                for (t = 0; t < TF_N; ++t) {
                    tf_re[t] /= (float)TF_N;
                }
                value = (float)log10(tf_kurtosis(TF_TRIM, TF_N - TF_TRIM) + 1e-6);
                break;
            }
            out[TF_BANDS + s] = value;
        }
    }
    for (t = 0; t < TF_AXES * TF_PER_AXIS; ++t) {
        features[t] = (features[t] - tf_mean[t]) / tf_scale[t];
    }
    return 0;
}
"""


def _band_bins(bands: np.ndarray) -> tuple[list[int], list[int]]:
    """Each band's 0/1 row over the rfft bins as a contiguous ``[first, last)`` range."""
    first, last = [], []
    for row in bands:
        bins = np.flatnonzero(row)
        if len(bins) == 0 or bins[-1] - bins[0] + 1 != len(bins):
            raise FirmwareError("a vibration band is empty or not contiguous; rebuild the bundle")
        first.append(int(bins[0]))
        last.append(int(bins[-1]) + 1)
    return first, last


def generate(config_dict: dict[str, Any]) -> FrontEndC:
    """The C front end for a ``vibration_bands`` config dict."""
    config = feature_config_from_dict(config_dict)
    frontend = config.build()
    n = config.window_samples
    if n & (n - 1):
        raise FirmwareError(
            f"the C vibration front end needs a power-of-two window (got {n} samples): retrain "
            "with window_samples = 1024, 2048 or 4096"
        )
    first, last = _band_bins(frontend._bands)
    hf_bins = np.flatnonzero(frontend._hf_mask)
    n_features = config.n_features
    mean = np.asarray(config.mean) if config.mean else np.zeros(n_features)
    scale = np.asarray(config.scale) if config.scale else np.ones(n_features)
    fft_text, fft_bytes = fft_tables(n)
    notes = (
        f" * window: {n} frames x {config.axes} axes in g at {config.sample_rate:g} Hz "
        f"(sensor full scale {config.full_scale_g:g} g).\n"
        " * Returns 1 for NaN/Inf, 2 for clipped samples, 3 for a flat (stuck) axis."
    )
    header = header_text(config.kind, n, config.axes, n_features, notes)
    tables = "".join(
        [
            f"#define TF_N {n}\n#define TF_AXES {config.axes}\n#define TF_BANDS {config.n_bands}\n",
            f"#define TF_STATS {len(config.stats)}\n#define TF_PER_AXIS {config.features_per_axis}\n",
            f"#define TF_CLIP_G {c_float(CLIP_FRACTION * config.full_scale_g)}\n",
            f"#define TF_HF_FIRST_BIN {int(hf_bins[0]) if len(hf_bins) else n // 2 + 1}\n",
            f"#define TF_TRIM {n // 16}\n",
            fft_text,
            float_array("tf_taper", frontend._taper),
            int_array("tf_band_first", first),
            int_array("tf_band_last", last),
            int_array("tf_stats", [_STAT_CODES[s] for s in config.stats], ctype="unsigned char"),
            float_array("tf_mean", mean),
            float_array("tf_scale", scale),
        ]
    )
    source = (
        "/* Generated by tinyfleet: C99 vibration front end. Do not edit. */\n"
        '#include "tinyfleet_frontend.h"\n\n#include <math.h>\n#include <stdint.h>\n\n'
        + tables
        + "\n"
        + FFT_CODE
        + "\n"
        + _CODE
    )
    table_bytes = fft_bytes + 4 * n + 2 * 2 * config.n_bands + len(config.stats) + 8 * n_features
    return FrontEndC(
        kind=config.kind,
        header=header,
        source=source,
        window_samples=n,
        channels=config.axes,
        features=n_features,
        table_bytes=table_bytes,
        buffer_bytes=2 * 4 * n,
    )
