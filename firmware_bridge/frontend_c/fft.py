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


_COMPLEX_FFT = """\
/* In-place forward DFT of re/im (length {length}): X[k] = sum x[t] e^{{-2 pi i k t / N}}. */
static void {name}(float *re, float *im)
{{
    int i, j, k, len;
    const int n = {length};
    for (i = 1, j = 0; i < n; ++i) {{
        int bit = n >> 1;
        for (; j & bit; bit >>= 1) {{
            j ^= bit;
        }}
        j ^= bit;
        if (i < j) {{
            float t = re[i];
            re[i] = re[j];
            re[j] = t;
            t = im[i];
            im[i] = im[j];
            im[j] = t;
        }}
    }}
    for (len = 2; len <= n; len <<= 1) {{
        const int half = len >> 1;
        const int stride = {step} * (n / len);
        for (i = 0; i < n; i += len) {{
            for (k = 0; k < half; ++k) {{
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
            }}
        }}
    }}
}}
"""

FFT_CODE = _COMPLEX_FFT.format(name="tf_fft", length="TF_FFT_N", step=1)

# A real FFT of TF_FFT_N points through a complex FFT of half the length (the even samples as the
# real part, the odd ones as the imaginary part), so a real signal needs TF_FFT_N floats of
# scratch instead of 2 x TF_FFT_N. Packed layout, in place in buf[TF_FFT_N]: re = buf[0 .. N/2),
# im = buf[N/2 .. N); X[k] = re[k] + i im[k] for 0 < k < N/2, X[0] = re[0], X[N/2] = im[0].
REAL_FFT_CODE = (
    _COMPLEX_FFT.format(name="tf_fft_half", length="(TF_FFT_N / 2)", step=2)
    + """
/* buf holds x[2m] in buf[m] and x[2m+1] in buf[N/2 + m] on entry; the packed spectrum on exit. */
static void tf_rfft(float *buf)
{
    int k;
    const int m = TF_FFT_N / 2;
    float *re = buf, *im = buf + m;
    float r0;
    tf_fft_half(re, im);
    r0 = re[0];
    re[0] = r0 + im[0];
    im[0] = r0 - im[0];
    for (k = 1; k <= m / 2; ++k) {
        const float ar = re[k], ai = im[k], br = re[m - k], bi = -im[m - k]; /* A=Z[k] B=conj(Z[m-k]) */
        const float fer = 0.5f * (ar + br), fei = 0.5f * (ai + bi);
        /* Fo = (A - B) / 2i */
        const float for_ = 0.5f * (ai - bi), foi = -0.5f * (ar - br);
        const float wr = tf_fft_cos[k], wi = -tf_fft_sin[k];
        const float tr = wr * for_ - wi * foi, ti = wr * foi + wi * for_;
        re[k] = fer + tr;
        im[k] = fei + ti;
        if (k != m - k) {
            re[m - k] = fer - tr;
            im[m - k] = -(fei - ti);
        }
    }
}

/* The inverse of tf_rfft, scaled like numpy's irfft: buf holds x[2m] in buf[m] and x[2m+1] in
 * buf[N/2 + m] on exit. */
static void tf_irfft(float *buf)
{
    int k;
    const int m = TF_FFT_N / 2;
    float *re = buf, *im = buf + m;
    const float x0 = re[0], xn = im[0];
    const float scale = 1.0f / (float)m;
    re[0] = 0.5f * (x0 + xn);
    im[0] = 0.5f * (x0 - xn);
    for (k = 1; k <= m / 2; ++k) {
        const float ar = re[k], ai = im[k], br = re[m - k], bi = -im[m - k]; /* X[k], conj(X[m-k]) */
        const float fer = 0.5f * (ar + br), fei = 0.5f * (ai + bi);
        const float dr = 0.5f * (ar - br), di = 0.5f * (ai - bi);
        const float wr = tf_fft_cos[k], wi = tf_fft_sin[k]; /* conj(W^k) */
        const float for_ = wr * dr - wi * di, foi = wr * di + wi * dr;
        /* Z[k] = Fe + i Fo; Z[m-k] = conj(Fe) + i conj(Fo) */
        re[k] = fer - foi;
        im[k] = fei + for_;
        if (k != m - k) {
            re[m - k] = fer + foi;
            im[m - k] = -fei + for_;
        }
    }
    /* z = conj(FFT(conj(Z))) / m */
    for (k = 0; k < m; ++k) {
        im[k] = -im[k];
    }
    tf_fft_half(re, im);
    for (k = 0; k < m; ++k) {
        re[k] *= scale;
        im[k] *= -scale;
    }
}
"""
)
