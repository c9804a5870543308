"""C99 port of the ``vibration_bands`` front end (device_sim/features/vibration.py).

Per axis: remove the mean; band energies of the Hann-tapered spectrum relative to the window's total
(``log10(band / total + 1e-6)``); then the statistics in the config's order (``log10`` RMS,
``log10`` kurtosis, crest factor, ``log10`` kurtosis above ``hf_cutoff_hz`` with ``n/16`` samples
trimmed at each end), then the amplitude at each shaft order; after the axes, ``log10`` of the
shaft speed, estimated without a tachometer from the power summed over axes (best harmonic sum over
quarter-bin candidates, parabolic refinement); finally standardised with the bundle's mean/scale. A window with NaN/Inf,
clipped samples (|x| ≥ 99.9 % of full scale) or a flat axis is refused, as ``validate_window`` does.

Memory (streaming, what ``main.cc`` uses): ``tinyfleet_frontend_push`` takes 32 frames at a time
(an accelerometer's FIFO: LIS3DH, ADXL345 and BMA4xx hold 32) and keeps the window as **int16
sensor counts** (full scale over 16 bits, the resolution a 16-bit accelerometer delivers: 0.49 mg at
±16 g), 2 bytes per sample instead of a float window. Features are computed axis by axis with one
real FFT of ``window_samples`` floats (a half-length complex FFT plus a split step, in place) that is
reused for the band energies, the order amplitudes and the high-pass kurtosis; the speed search
keeps only the lowest power bins summed over axes, and every axis but the last recomputes its
tapered spectrum for the order amplitudes once the speed is known (one more FFT per extra axis,
no per-axis bins kept). At 4096 x 3 that is 24 KB of window + 16 KB of FFT scratch + 0.8 KB
instead of ~90 KB.

Why not "a few KB": these features need the whole window at once. The 50 % overlapping windows
mean every sample is still needed when its window completes (int16: 2 B x samples x axes); the
band energies are a quadratic form of the whole Hann-tapered window and the high-pass kurtosis a
4th moment of a whole-window circular filter, so neither can be accumulated hop by hop; and the
kurtosis needs every sample of the filtered window at once (``window_samples`` floats; float32,
as a q15 FFT would miss the port's 1e-4 σ tolerance on band ratios near 1e-6). Going below window + one FFT means changing the features
(shorter or Welch-averaged spectra, per-hop kurtosis), which is the vibration model's decision,
to be validated on real bearings, not the port's. On a stream already at the sensor's resolution
(:func:`sensor_counts`) the result equals Python within the whole-window tolerance.

Sums (mean, moments, the high-pass kurtosis) run in float within blocks of 64 samples and in
double across blocks: kurtosis divides a 4th moment by a squared 2nd moment and plain float sums
over 4096 samples lose digits there, but double arithmetic per sample is emulated in software on
a Cortex-M4F (single-precision FPU) and was 62 % of the front end's instructions (≈ 14 M of 23 M
per 4096 x 3 window, counted in QEMU). A block of int16 sensor counts sums exactly in float.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from device_sim.features import feature_config_from_dict
from device_sim.features.vibration import CLIP_FRACTION
from firmware_bridge.c_text import c_float, float_array, int_array
from firmware_bridge.errors import FirmwareError
from firmware_bridge.frontend_c import FrontEndC, header_text
from firmware_bridge.frontend_c.fft import REAL_FFT_CODE, fft_tables

KINDS = ("vibration_bands",)  # the feature kinds this module ports to C

_STAT_CODES = {"rms": 0, "kurtosis": 1, "crest": 2, "hf_kurtosis": 3}

_CODE = """\
/* The window being analysed: a caller's float window (tinyfleet_frontend) or, when NULL, the
 * int16 ring that tinyfleet_frontend_push fills. */
static const float *tf_window;
static int16_t tf_ring[TF_N * TF_AXES];
static long tf_pushed;                   /* frames pushed so far */
static long tf_nan_until, tf_clip_until; /* a bad frame spoils the windows up to these counts */
static double tf_mean[TF_AXES];
static float tf_buf[TF_N];               /* real-FFT scratch, reused axis by axis */
#if TF_ORDERS > 0
static float tf_psum[TF_LOW_BINS];       /* low-frequency power summed over axes: the speed */
#endif

/* Sample t (0 = oldest) of an axis, in g. */
static float tf_sample(int t, int axis)
{
    if (tf_window != NULL) {
        return tf_window[t * TF_AXES + axis];
    }
    return (float)tf_ring[((int)((tf_pushed + t) & (TF_N - 1))) * TF_AXES + axis] * TF_G_PER_COUNT;
}

/* tf_buf <- the packed spectrum of the demeaned axis, Hann-tapered when `taper` is set. */
static void tf_axis_spectrum(int axis, int taper)
{
    int t;
    const float mean = (float)tf_mean[axis];
    for (t = 0; t < TF_N; ++t) {
        float v = tf_sample(t, axis) - mean;
        if (taper) {
            v *= tf_taper[t];
        }
        tf_buf[(t & 1) ? TF_N / 2 + t / 2 : t / 2] = v;
    }
    tf_rfft(tf_buf);
}

static float tf_power(int k)
{
    if (k == 0) {
        return tf_buf[0] * tf_buf[0];
    }
    if (k == TF_N / 2) {
        return tf_buf[TF_N / 2] * tf_buf[TF_N / 2];
    }
    return tf_buf[k] * tf_buf[k] + tf_buf[TF_N / 2 + k] * tf_buf[TF_N / 2 + k];
}

/* Pearson kurtosis of the high-passed signal in tf_buf (tf_irfft layout), ends trimmed. Sums in
 * float within blocks of TF_BLOCK samples and in double across blocks (see tf_features). */
static double tf_hf_kurtosis(void)
{
    int t, i;
    double mean = 0.0, m2 = 0.0, m4 = 0.0;
    float mean_f;
    const double count = (double)(TF_N - 2 * TF_TRIM);
    for (t = TF_TRIM; t < TF_N - TF_TRIM; t += TF_BLOCK) {
        const int end = t + TF_BLOCK < TF_N - TF_TRIM ? t + TF_BLOCK : TF_N - TF_TRIM;
        float block = 0.0f;
        for (i = t; i < end; ++i) {
            block += tf_buf[(i & 1) ? TF_N / 2 + i / 2 : i / 2];
        }
        mean += (double)block;
    }
    mean /= count;
    mean_f = (float)mean;
    for (t = TF_TRIM; t < TF_N - TF_TRIM; t += TF_BLOCK) {
        const int end = t + TF_BLOCK < TF_N - TF_TRIM ? t + TF_BLOCK : TF_N - TF_TRIM;
        float block2 = 0.0f, block4 = 0.0f;
        for (i = t; i < end; ++i) {
            const float c = tf_buf[(i & 1) ? TF_N / 2 + i / 2 : i / 2] - mean_f;
            const float c2 = c * c;
            block2 += c2;
            block4 += c2 * c2;
        }
        m2 += (double)block2;
        m4 += (double)block4;
    }
    m2 /= count;
    m4 /= count;
    return m4 / (m2 * m2 + 1e-12);
}

#if TF_ORDERS > 0
/* Shaft speed in Hz: best harmonic sum over the candidates, then parabolic interpolation of the
 * log magnitude around the 1x peak. */
static double tf_shaft_speed(void)
{
    int c, h, d, best = 0, peak;
    double best_score = -1.0, left, mid, right, curvature, offset = 0.0;
    for (c = 0; c < TF_CANDIDATES; ++c) {
        double score = 0.0;
        for (h = 0; h < 4; ++h) {
            const int k = c * 4 + h;
            const int below = tf_harmonic_bin[k];
            const double fraction = (double)tf_harmonic_fraction[k];
            score += sqrt((double)tf_psum[below]) * (1.0 - fraction);
            score += sqrt((double)tf_psum[below + 1]) * fraction;
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

/* log10 amplitude (g) at each shaft order of the axis whose tapered spectrum is in tf_buf: power
 * within +-2 bins (the Hann main lobe). */
static void tf_order_amplitudes(double speed, float *out)
{
    int o, d;
    for (o = 0; o < TF_ORDERS; ++o) {
        const int centre = (int)rint((double)tf_orders[o] * speed / TF_RESOLUTION);
        double lobe = 0.0;
        for (d = -2; d <= 2; ++d) {
            int k = centre + d;
            k = k < 0 ? 0 : k > TF_N / 2 ? TF_N / 2 : k;
            lobe += (double)tf_power(k);
        }
        out[o] = (float)log10(4.0 * sqrt(lobe / 1.5) / TF_N + 1e-6);
    }
}
#endif

/* Features of the current window (tf_window or the ring); 3 when an axis is flat. */
static int tf_features(float *features)
{
    int axis, t, b, s;
#if TF_ORDERS > 0
    double speed = 0.0;
#endif
    /* Sums run in float within blocks of TF_BLOCK samples and in double across blocks: as exact as
     * double sums for these magnitudes (a block of int16 counts sums exactly in float), while the
     * Cortex-M4F, whose FPU is single-precision, emulates only one double add per block. */
    for (axis = 0; axis < TF_AXES; ++axis) {
        const float first = tf_sample(0, axis);
        double mean = 0.0;
        int flat = 1, i;
        for (t = 0; t < TF_N; t += TF_BLOCK) {
            float block = 0.0f;
            for (i = t; i < t + TF_BLOCK; ++i) {
                const float x = tf_sample(i, axis);
                block += x;
                flat &= x == first;
            }
            mean += (double)block;
        }
        if (flat) {
            return 3; /* zero variance: every sample equal, as numpy's std == 0 */
        }
        tf_mean[axis] = mean / TF_N;
    }
    for (axis = 0; axis < TF_AXES; ++axis) {
        float *out = features + axis * TF_PER_AXIS;
        const float mean = (float)tf_mean[axis];
        float peak_f = 0.0f;
        double m2 = 0.0, m4 = 0.0, peak, total = 0.0, rms;
        int i;
        for (t = 0; t < TF_N; t += TF_BLOCK) {
            float block2 = 0.0f, block4 = 0.0f;
            for (i = t; i < t + TF_BLOCK; ++i) {
                const float c = tf_sample(i, axis) - mean;
                const float c2 = c * c;
                block2 += c2;
                block4 += c2 * c2;
                if (fabsf(c) > peak_f) {
                    peak_f = fabsf(c);
                }
            }
            m2 += (double)block2;
            m4 += (double)block4;
        }
        peak = (double)peak_f;
        rms = sqrt(m2 / TF_N);
        /* Band energies of the tapered spectrum, relative to their total. */
        tf_axis_spectrum(axis, 1);
#if TF_ORDERS > 0
        for (t = 0; t < TF_LOW_BINS; ++t) {
            tf_psum[t] = (axis == 0 ? 0.0f : tf_psum[t]) + tf_power(t);
        }
        if (axis == TF_AXES - 1) {
            /* The summed power is complete: the speed, and this axis's orders while its tapered
             * spectrum is still in tf_buf (the other axes recompute theirs below). */
            speed = tf_shaft_speed();
            tf_order_amplitudes(speed, out + TF_BANDS + TF_STATS);
        }
#endif
        for (b = 0; b < TF_BANDS; ++b) {
            double energy = 0.0;
            for (t = tf_band_first[b]; t < tf_band_last[b]; ++t) {
                energy += (double)tf_power(t);
            }
            out[b] = (float)energy;
            total += energy;
        }
        for (b = 0; b < TF_BANDS; ++b) {
            out[b] = (float)log10((double)out[b] / (total + 1e-12) + 1e-6);
        }
        for (s = 0; s < TF_STATS; ++s) {
            float value;
            switch (tf_stats[s]) {
            case 0:
                value = (float)log10(rms + 1e-6);
                break;
            case 1:
                m2 /= TF_N;
                value = (float)log10((m4 / TF_N) / (m2 * m2 + 1e-12) + 1e-6);
                m2 *= TF_N;
                break;
            case 2:
                value = (float)(peak / (rms + 1e-9));
                break;
            default:
                /* Brick-wall high-pass of the untapered signal (bins below the cutoff zeroed),
                 * back to time, kurtosis without the ringing ends. */
                tf_axis_spectrum(axis, 0);
                for (t = 0; t < TF_HF_FIRST_BIN && t < TF_N / 2; ++t) {
                    tf_buf[t] = 0.0f;
                    if (t > 0) {
                        tf_buf[TF_N / 2 + t] = 0.0f;
                    }
                }
                if (TF_HF_FIRST_BIN > TF_N / 2) {
                    tf_buf[TF_N / 2] = 0.0f;
                }
                tf_irfft(tf_buf);
                value = (float)log10(tf_hf_kurtosis() + 1e-6);
                break;
            }
            out[TF_BANDS + s] = value;
        }
    }
#if TF_ORDERS > 0
    for (axis = 0; axis < TF_AXES - 1; ++axis) {
        tf_axis_spectrum(axis, 1);
        tf_order_amplitudes(speed, features + axis * TF_PER_AXIS + TF_BANDS + TF_STATS);
    }
    features[TF_AXES * TF_PER_AXIS] = (float)log10(speed);
#endif
    for (t = 0; t < TF_FEATURES; ++t) {
        features[t] = (features[t] - tf_norm_mean[t]) / tf_norm_scale[t];
    }
    return 0;
}

int tinyfleet_frontend(const float *window, float *features)
{
    int t;
    int status = 0;
    for (t = 0; t < TF_N * TF_AXES && status != 1; ++t) {
        if (!isfinite(window[t])) {
            status = 1;
        } else if (fabsf(window[t]) >= TF_CLIP_G) {
            status = 2;
        }
    }
    if (status != 0) {
        return status;
    }
    tf_window = window;
    status = tf_features(features);
    tf_window = NULL;
    return status;
}

int tinyfleet_frontend_push(const float *frames, float *features)
{
    int f, axis;
    for (f = 0; f < TINYFLEET_FE_PUSH_FRAMES; ++f) {
        const int slot = (int)(tf_pushed & (TF_N - 1)) * TF_AXES;
        for (axis = 0; axis < TF_AXES; ++axis) {
            const float v = frames[f * TF_AXES + axis];
            long count = 0;
            if (!isfinite(v)) {
                tf_nan_until = tf_pushed + TF_N;
            } else {
                if (fabsf(v) >= TF_CLIP_G) {
                    tf_clip_until = tf_pushed + TF_N;
                }
                count = lrintf(v / TF_G_PER_COUNT);
                count = count < -32768 ? -32768 : count > 32767 ? 32767 : count;
            }
            tf_ring[slot + axis] = (int16_t)count;
        }
        ++tf_pushed;
    }
    if (tf_pushed < TF_N || (tf_pushed - TF_N) % TF_HOP != 0) {
        return TINYFLEET_FE_NOT_READY;
    }
    if (tf_pushed <= tf_nan_until) {
        return 1;
    }
    if (tf_pushed <= tf_clip_until) {
        return 2;
    }
    return tf_features(features);
}

void tinyfleet_frontend_reset(void)
{
    tf_pushed = 0;
    tf_nan_until = -1;
    tf_clip_until = -1;
}
"""


_STREAMING = """\
/* Streaming (what main.cc does): call tinyfleet_frontend_push() with every
 * TINYFLEET_FE_PUSH_FRAMES new frames (TINYFLEET_FE_PUSH_VALUES floats, sample-major, in g). It
 * keeps the last TINYFLEET_FE_WINDOW_SAMPLES frames as int16 sensor counts of
 * TINYFLEET_FE_G_PER_COUNT g (a 16-bit accelerometer's own resolution) and, every
 * TINYFLEET_FE_HOP_FRAMES frames once the window is full, writes the features of the last window:
 * returns 0 then, TINYFLEET_FE_NOT_READY in between, else the refusal code of tinyfleet_frontend()
 * for a window holding a NaN/Inf (1), clipped (2) or flat (3) signal. */
#define TINYFLEET_FE_STREAMING 1
#define TINYFLEET_FE_PUSH_FRAMES {push}
#define TINYFLEET_FE_PUSH_VALUES ({push} * {axes})
#define TINYFLEET_FE_HOP_FRAMES {hop}
#define TINYFLEET_FE_G_PER_COUNT {g_per_count}
#define TINYFLEET_FE_NOT_READY 5
int tinyfleet_frontend_push(const float *frames, float *features);
/* Forget the pushed frames (e.g. after a sensor restart). */
void tinyfleet_frontend_reset(void);
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
    # The power bins the speed search and the order lobes can touch (all below a few hundred Hz):
    # only these are kept, summed over axes, for the speed search.
    top_speed_bin = int(centre.max()) + 1.5  # peak refinement moves at most 1 bin + 0.5
    reach = max(
        int(below.max()) + 2,
        int(centre.max()) + 3,
        int(np.ceil(max(config.orders) * top_speed_bin)) + 3,
    )
    low_bins = min(len(frontend._hf_mask), reach)
    text += f"#define TF_LOW_BINS {low_bins}\n"
    return text, len(candidates) * (4 * 2 + 4 * 4 + 2) + 4 * len(config.orders)


def low_bins(frontend) -> int:
    """How many low-frequency power bins the C port keeps per axis (see ``_speed_tables``)."""
    text, _ = _speed_tables(frontend)
    return int(text.rsplit("TF_LOW_BINS", 1)[1].split()[0])


def sensor_counts(windows: np.ndarray, full_scale_g: float) -> np.ndarray:
    """``windows`` (g) at the 16-bit resolution the streaming C port stores: what a 16-bit
    accelerometer delivers, and exactly the float32 values the C port analyses."""
    g_per_count = np.float32(full_scale_g / 32768.0)
    counts = np.clip(np.rint(np.asarray(windows, dtype=np.float32) / g_per_count), -32768, 32767)
    return (counts.astype(np.float32) * g_per_count).astype(np.float32)


def _push_frames(hop: int) -> int:
    """Frames per push: a power of two up to 32 (an accelerometer FIFO) that divides the hop."""
    push = 32
    while hop % push:
        push //= 2
    return push


def generate(config_dict: dict[str, Any]) -> FrontEndC:
    """The C front end for a ``vibration_bands`` config dict."""
    config = feature_config_from_dict(config_dict)
    frontend = config.build()
    n = config.window_samples
    if n & (n - 1) or n < 8:
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
    push = _push_frames(config.hop_samples)
    g_per_count = config.full_scale_g / 32768.0
    notes = (
        f" * window: {n} frames x {config.axes} axes in g at {config.sample_rate:g} Hz "
        f"(sensor full scale {config.full_scale_g:g} g), a new window every "
        f"{config.hop_samples} frames.\n"
        " * Returns 1 for NaN/Inf, 2 for clipped samples, 3 for a flat (stuck) axis."
    )
    streaming = _STREAMING.format(
        push=push, axes=config.axes, hop=config.hop_samples, g_per_count=c_float(g_per_count)
    )
    header = header_text(config.kind, n, config.axes, n_features, notes, streaming)
    parts = [
        f"#define TF_N {n}\n#define TF_BINS {n // 2 + 1}\n#define TF_AXES {config.axes}\n",
        f"#define TF_BANDS {config.n_bands}\n#define TF_STATS {len(config.stats)}\n",
        f"#define TF_ORDERS {len(config.orders)}\n#define TF_PER_AXIS {config.features_per_axis}\n",
        f"#define TF_FEATURES {n_features}\n#define TF_HOP {config.hop_samples}\n",
        f"#define TF_RESOLUTION {float(frontend._resolution)!r}\n",
        f"#define TF_CLIP_G {c_float(CLIP_FRACTION * config.full_scale_g)}\n",
        f"#define TF_G_PER_COUNT {c_float(g_per_count)}\n",
        f"#define TF_HF_FIRST_BIN {int(hf_bins[0]) if len(hf_bins) else n // 2 + 1}\n",
        f"#define TF_TRIM {n // 16}\n#define TF_BLOCK {min(64, n)}\n",
        fft_text,
        float_array("tf_taper", frontend._taper),
        int_array("tf_band_first", first),
        int_array("tf_band_last", last),
        int_array("tf_stats", [_STAT_CODES[s] for s in config.stats], ctype="unsigned char"),
        float_array("tf_norm_mean", mean),
        float_array("tf_norm_scale", scale),
    ]
    table_bytes = fft_bytes + 4 * n + 2 * 2 * config.n_bands + len(config.stats) + 8 * n_features
    # int16 ring of the window, one real-FFT scratch, the axis means, the stream counters and the
    # window pointer (host sizes: 64-bit long and pointer); with orders, the summed low bins.
    buffer_bytes = 2 * n * config.axes + 4 * n + 8 * config.axes + 3 * 8 + 8
    if config.orders:
        text, size = _speed_tables(frontend)
        parts.append(text)
        table_bytes += size
        buffer_bytes += 4 * low_bins(frontend)
    source = (
        "/* Generated by tinyfleet: C99 vibration front end. Do not edit. */\n"
        '#include "tinyfleet_frontend.h"\n\n#include <math.h>\n#include <stddef.h>\n'
        "#include <stdint.h>\n\n" + "".join(parts) + "\n" + REAL_FFT_CODE + "\n" + _CODE
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
        streaming_window_bytes=4 * push * config.axes,
    )
