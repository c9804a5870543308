"""C99 port of the ``vibration_bands`` front end (device_sim/features/vibration.py).

Per axis: remove the mean; band energies of the Hann-tapered spectrum relative to the window's total
(``log10(band / total + 1e-6)``); then the statistics in the config's order (``log10`` RMS,
``log10`` kurtosis, crest factor, ``log10`` kurtosis above ``hf_cutoff_hz`` with ``n/16`` samples
trimmed at each end), then the amplitude at each shaft order; after the axes, ``log10`` of the
shaft speed, estimated without a tachometer from the power summed over axes (best harmonic sum over
quarter-bin candidates, parabolic refinement); finally standardised with the bundle's mean/scale. A window with NaN/Inf,
clipped samples (|x| ≥ 99.9 % of full scale) or a flat axis is refused, as ``validate_window`` does.

Memory: one complex FFT buffer (2 × ``window_samples`` floats), reused axis by axis, plus the
power spectrum summed over axes (``window_samples/2 + 1`` floats) for the speed estimate. The order
amplitudes need the speed, which needs every axis, so each axis' tapered FFT is computed a second
time rather than keeping three spectra (24 KB at 4096 samples) in RAM. Moments are
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
#if TF_ORDERS > 0
static float tf_psum[TF_BINS]; /* power summed over axes: the speed estimate needs every axis */
#endif

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

static double tf_axis_mean(const float *window, int axis)
{
    int t;
    double mean = 0.0;
    for (t = 0; t < TF_N; ++t) {
        mean += window[t * TF_AXES + axis];
    }
    return mean / TF_N;
}

/* tf_re/tf_im <- spectrum of the demeaned, Hann-tapered axis. */
static void tf_tapered_spectrum(const float *window, int axis, double mean)
{
    int t;
    for (t = 0; t < TF_N; ++t) {
        tf_re[t] = (float)(window[t * TF_AXES + axis] - mean) * tf_taper[t];
        tf_im[t] = 0.0f;
    }
    tf_fft(tf_re, tf_im);
}

/* 0 when the window may be inferred; else why not (as validate_window). */
static int tf_check(const float *window)
{
    int axis, t;
    for (axis = 0; axis < TF_AXES; ++axis) {
        double mean, var = 0.0;
        for (t = 0; t < TF_N; ++t) {
            const float v = window[t * TF_AXES + axis];
            if (!isfinite(v)) {
                return 1;
            }
            if (fabsf(v) >= TF_CLIP_G) {
                return 2;
            }
        }
        mean = tf_axis_mean(window, axis);
        for (t = 0; t < TF_N; ++t) {
            const double c = window[t * TF_AXES + axis] - mean;
            var += c * c;
        }
        if (var == 0.0) {
            return 3;
        }
    }
    return 0;
}

static float tf_statistic(const float *window, int axis, double mean, int stat, float rms,
                          double peak)
{
    int t;
    switch (stat) {
    case 0:
        return log10f(rms + 1e-6f);
    case 1:
        for (t = 0; t < TF_N; ++t) {
            tf_re[t] = (float)(window[t * TF_AXES + axis] - mean);
        }
        return (float)log10(tf_kurtosis(0, TF_N) + 1e-6);
    case 2:
        return (float)(peak / (rms + 1e-9));
    default:
        /* Brick-wall high-pass of the untapered signal: FFT, zero the bins below the cutoff (and
         * their mirror images), inverse FFT by conjugation. */
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
        return (float)log10(tf_kurtosis(TF_TRIM, TF_N - TF_TRIM) + 1e-6);
    }
}

#if TF_ORDERS > 0
/* Shaft speed in Hz from tf_psum: best harmonic sum over the candidates, then parabolic
 * interpolation of the log magnitude around the 1x peak. */
static double tf_shaft_speed(void)
{
    int c, h, d, best = 0, peak;
    double best_score = -1.0, left, mid, right, curvature, offset = 0.0;
    for (c = 0; c < TF_CANDIDATES; ++c) {
        double score = 0.0;
        for (h = 0; h < 4; ++h) {
            const int k = c * 4 + h;
            const int below = tf_harmonic_bin[k];
            const int above = below + 1 < TF_BINS ? below + 1 : TF_BINS - 1;
            const double fraction = tf_harmonic_fraction[k];
            score += sqrt((double)tf_psum[below]) * (1.0 - fraction);
            score += sqrt((double)tf_psum[above]) * fraction;
        }
        if (score > best_score) {
            best_score = score;
            best = c;
        }
    }
    peak = tf_candidate_centre[best] - 1;
    for (d = 0; d <= 1; ++d) {
        const int i = tf_candidate_centre[best] + d;
        if (tf_psum[i] > tf_psum[peak]) {
            peak = i;
        }
    }
    left = log(sqrt((double)tf_psum[peak - 1]) + 1e-12);
    mid = log(sqrt((double)tf_psum[peak]) + 1e-12);
    right = log(sqrt((double)tf_psum[peak + 1]) + 1e-12);
    curvature = left - 2.0 * mid + right;
    if (curvature < 0.0) {
        offset = 0.5 * (left - right) / curvature;
        offset = offset < -0.5 ? -0.5 : offset > 0.5 ? 0.5 : offset;
    }
    return (peak + offset) * TF_RESOLUTION;
}
#endif

int tinyfleet_frontend(const float *window, float *features)
{
    int axis, t, b, s;
    const int status = tf_check(window);
    if (status != 0) {
        return status;
    }
#if TF_ORDERS > 0
    for (t = 0; t < TF_BINS; ++t) {
        tf_psum[t] = 0.0f;
    }
#endif
    for (axis = 0; axis < TF_AXES; ++axis) {
        float *out = features + axis * TF_PER_AXIS;
        const double mean = tf_axis_mean(window, axis);
        double m2 = 0.0, peak = 0.0, total = 0.0;
        float rms;
        for (t = 0; t < TF_N; ++t) {
            const double c = window[t * TF_AXES + axis] - mean;
            m2 += c * c;
            if (fabs(c) > peak) {
                peak = fabs(c);
            }
        }
        rms = (float)sqrt(m2 / TF_N);
        /* Band energies of the tapered spectrum, relative to their total. */
        tf_tapered_spectrum(window, axis, mean);
        for (t = 0; t < TF_BINS; ++t) {
            tf_re[t] = tf_re[t] * tf_re[t] + tf_im[t] * tf_im[t]; /* power */
#if TF_ORDERS > 0
            tf_psum[t] += tf_re[t];
#endif
        }
        for (b = 0; b < TF_BANDS; ++b) {
            double energy = 0.0;
            for (t = tf_band_first[b]; t < tf_band_last[b]; ++t) {
                energy += tf_re[t];
            }
            out[b] = (float)energy;
            total += energy;
        }
        for (b = 0; b < TF_BANDS; ++b) {
            out[b] = (float)log10(out[b] / (total + 1e-12) + 1e-6);
        }
        for (s = 0; s < TF_STATS; ++s) {
            out[TF_BANDS + s] = tf_statistic(window, axis, mean, tf_stats[s], rms, peak);
        }
    }
#if TF_ORDERS > 0
    {
        const double speed = tf_shaft_speed();
        int o, d;
        for (axis = 0; axis < TF_AXES; ++axis) {
            float *out = features + axis * TF_PER_AXIS + TF_BANDS + TF_STATS;
            tf_tapered_spectrum(window, axis, tf_axis_mean(window, axis));
            for (o = 0; o < TF_ORDERS; ++o) {
                const int centre = (int)rint(tf_orders[o] * speed / TF_RESOLUTION);
                double lobe = 0.0;
                for (d = -2; d <= 2; ++d) {
                    int k = centre + d;
                    k = k < 0 ? 0 : k > TF_BINS - 1 ? TF_BINS - 1 : k;
                    lobe += (double)tf_re[k] * tf_re[k] + (double)tf_im[k] * tf_im[k];
                }
                out[o] = (float)log10(4.0 * sqrt(lobe / 1.5) / TF_N + 1e-6);
            }
        }
        features[TF_AXES * TF_PER_AXIS] = (float)log10(speed);
    }
#endif
    for (t = 0; t < TF_FEATURES; ++t) {
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


def _speed_tables(frontend) -> tuple[str, int]:
    """The shaft-speed search as tables: per candidate speed, the FFT bin below each of its first
    four harmonics and the interpolation fraction (exactly the Python harmonic-sum matrix), the
    candidate's rounded 1x bin, and the orders. Returns C text and bytes."""
    config = frontend.config
    candidates = frontend._candidates
    positions = np.outer(candidates, np.arange(1, 5)) / frontend._resolution
    below = np.floor(positions).astype(int)
    fraction = positions - below
    centre = np.round(candidates / frontend._resolution).astype(int)
    text = (
        f"#define TF_CANDIDATES {len(candidates)}\n"
        + int_array("tf_harmonic_bin", below)
        + float_array("tf_harmonic_fraction", fraction)
        + int_array("tf_candidate_centre", centre)
        + float_array("tf_orders", np.asarray(config.orders))
    )
    return text, len(candidates) * (4 * 2 + 4 * 4 + 2) + 4 * len(config.orders)


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
    parts = [
        f"#define TF_N {n}\n#define TF_BINS {n // 2 + 1}\n#define TF_AXES {config.axes}\n",
        f"#define TF_BANDS {config.n_bands}\n#define TF_STATS {len(config.stats)}\n",
        f"#define TF_ORDERS {len(config.orders)}\n#define TF_PER_AXIS {config.features_per_axis}\n",
        f"#define TF_FEATURES {n_features}\n",
        f"#define TF_RESOLUTION {float(frontend._resolution)!r}\n",
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
    table_bytes = fft_bytes + 4 * n + 2 * 2 * config.n_bands + len(config.stats) + 8 * n_features
    buffer_bytes = 2 * 4 * n
    if config.orders:
        text, size = _speed_tables(frontend)
        parts.append(text)
        table_bytes += size
        buffer_bytes += 4 * (n // 2 + 1)
    source = (
        "/* Generated by tinyfleet: C99 vibration front end. Do not edit. */\n"
        '#include "tinyfleet_frontend.h"\n\n#include <math.h>\n#include <stdint.h>\n\n'
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
        window_samples=n,
        channels=config.axes,
        features=n_features,
        table_bytes=table_bytes,
        buffer_bytes=buffer_bytes,
    )
