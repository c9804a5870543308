"""An in-place radix-2 complex FFT in C99, with its twiddle table generated here.

Why our own and not CMSIS-DSP/ESP-DSP: the generated front end must compile anywhere (gcc on the
host for the differential tests, any MCU toolchain) with no library. On a Cortex-M, swapping
``tf_fft`` for ``arm_rfft_fast_f32`` is a drop-in speed-up; the maths is the same DFT.
Twiddles are computed in float64 and rounded once to float32, which keeps the float32 FFT within a
few ULP-scaled errors of numpy/scipy (measured by the differential tests).
"""

from __future__ import annotations

import numpy as np

from firmware_bridge.c_text import float_array


def fft_tables(n: int) -> tuple[str, int]:
    """C text of the twiddle tables for an ``n``-point FFT, and their size in bytes."""
    if n < 2 or n & (n - 1):
        raise ValueError(f"FFT length must be a power of two >= 2, got {n}")
    k = np.arange(n // 2)
    cos = np.cos(2.0 * np.pi * k / n)
    sin = np.sin(2.0 * np.pi * k / n)
    text = (
        f"#define TF_FFT_N {n}\n" + float_array("tf_fft_cos", cos) + float_array("tf_fft_sin", sin)
    )
    return text, 2 * 4 * (n // 2)


FFT_CODE = """\
/* In-place forward DFT of re/im (length TF_FFT_N): X[k] = sum x[t] e^{-2 pi i k t / N}. */
static void tf_fft(float *re, float *im)
{
    int i, j, k, len;
    const int n = TF_FFT_N;
    for (i = 1, j = 0; i < n; ++i) {
        int bit = n >> 1;
        for (; j & bit; bit >>= 1) {
            j ^= bit;
        }
        j ^= bit;
        if (i < j) {
            float t = re[i];
            re[i] = re[j];
            re[j] = t;
            t = im[i];
            im[i] = im[j];
            im[j] = t;
        }
    }
    for (len = 2; len <= n; len <<= 1) {
        const int half = len >> 1;
        const int stride = n / len;
        for (i = 0; i < n; i += len) {
            for (k = 0; k < half; ++k) {
                const float wr = tf_fft_cos[k * stride];
                const float wi = -tf_fft_sin[k * stride];
                const int a = i + k;
                const int b = a + half;
                const float xr = re[b] * wr - im[b] * wi;
                const float xi = re[b] * wi + im[b] * wr;
                re[b] = re[a] - xr;
                im[b] = im[a] - xi;
                re[a] += xr;
                im[a] += xi;
            }
        }
    }
}
"""
