"""numba kernels: one analysis frame in a few microseconds, shared by the batch API and the stream.

Every feature is computed by one per-frame function; the batch drivers and the streaming push
loop call the same functions, so a stream and the batch API give bit-identical frames.
Element-wise arithmetic is float64 without fastmath (no FMA contraction, no reassociation).
Sums go through two small helpers (`_sum`, `_dot`) that alone are compiled with
reassociation, so LLVM keeps vector partial sums; their order is fixed by the compiled loop
and the length, the same for every caller. error_model="numpy" drops the zero-division checks
that would otherwise stop loops from vectorising.
FFT: the real n_fft-point FFT is an n_fft/2-point complex FFT of the even/odd samples plus the
real-FFT split; the complex FFT is a self-sorting (Stockham) FFT, radix 4 then radix 8, whose
stages after the first run over contiguous samples and vectorise. A DFT matrix product would
cost n_fft^2 multiply-adds per frame instead of ~n_fft/2*log2(n_fft/2) (the benchmark
measures both).
What keeps loops vectorised here (each checked in LLVM's remarks and timed): uint64 indices
wherever an offset is added (a signed index gets a wraparound select that turns loads and
stores into gathers and scatters); one scratch array with constant offsets rather than several
arrays (no runtime alias checks); inner loops that LLVM does not fully unroll (numba runs no
SLP vectoriser, so a fully unrolled loop stays scalar) and that run at least 32 iterations
when their trip count is only known at run time.
Logarithms of float32 values (log-mel, the entropy's ln p) go through `ln32_into`, a
polynomial that vectorises and is within a few float32 ulp of ln; math.log10 is a scalar call.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, types

# Energy envelope band: where vowel (syllable nucleus) energy lives, above mains hum and below fricatives.
ENVELOPE_FMIN = 300.0
ENVELOPE_FMAX = 3400.0
ENVELOPE_FLOOR = 1e-10  # mean-square floor of the envelope (-100 dBFS)
ZC_THRESHOLD = 1e-10  # librosa.zero_crossings: |x| <= threshold counts as 0 (non-negative)
CLIP_LEVEL = 0.999  # |x| at or above this counts as clipped (int16 full scale is 0.99997)
LOG_MEL_AMIN = 1e-10  # the stream's power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)


# ---- sums: the only reassociated arithmetic --------------------------------------------------

@njit(cache=True, error_model="numpy", fastmath={"reassoc"})
def _sum(a, lo, hi):
    """sum(a[lo:hi]) in vector partial sums (0 <= lo: uint64 indices, so no wraparound selects,
    which would turn the loads into gathers)."""
    s = 0.0
    for i in range(np.uint64(lo), np.uint64(hi)):
        s += a[i]
    return s


@njit(cache=True, error_model="numpy", fastmath={"reassoc"})
def _dot(a, b, lo, hi):
    """sum(a[i] * b[i] for i in lo..hi-1) in vector partial sums (each product rounded first)."""
    s = 0.0
    for i in range(np.uint64(lo), np.uint64(hi)):
        s += a[i] * b[i]
    return s


# ---- power spectrum ----------------------------------------------------------------------------
# The four FFT work arrays (x re, x im, y re, y im) are quarters of one scratch array `z`, each
# m + SKEW long (m = n_fft/2), and the stages take their offsets into it. With one base and offsets
# that are constants, LLVM proves that a stage's reads and writes never overlap and vectorises
# even a 4-iteration inner loop with no runtime alias checks; with four arrays it would not.
# The stages are inlined (numba `inline="always"`) so the spelled-out default sizes compile each
# stage with constant offsets, length and stride. Indices are uint64: numba then emits no
# negative-index wraparound, which would otherwise hide the loops' bounds from the vectoriser.
# (uint64 mixed with int64 is float64 in numba, hence the _U constants.)
_U1 = np.uint64(1)
_U2 = np.uint64(2)
_U3 = np.uint64(3)
_U4 = np.uint64(4)
_U5 = np.uint64(5)
_U6 = np.uint64(6)
_U7 = np.uint64(7)
_U8 = np.uint64(8)
_SQRT_HALF = math.sqrt(0.5)
SKEW = 8  # float64 gap after each FFT work array, so x and y are not 4 KiB apart (4K aliasing; gain not measured)


@njit(cache=True, error_model="numpy")
def fft_scratch_size(n_fft):
    """float64 values of power_frame's scratch `z` (four work arrays of n_fft/2 + SKEW)."""
    return 4 * (n_fft // 2 + SKEW)


@njit(cache=True, error_model="numpy")
def power_frame(frame, window, tw_re, tw_im, post_re, post_im, z, power):
    """|rfft(window * frame)|^2 into `power` (n_fft//2+1); z: fft_scratch_size(n_fft) scratch.

    The m = n_fft/2 complex samples z[n] = w[2n]x[2n] + i w[2n+1]x[2n+1] go through a
    Stockham FFT (radix-4 first, radix-8 after, see filters.fft_radices), then the real-FFT split."""
    m = window.shape[0] // 2
    # Our default (n_fft 512) and librosa's (2048) spell the stages out with constant offsets.
    if m == 256:
        _window(frame, window, z, 256, 264)
        _first_radix4(z, 0, 264, 528, 792, tw_re, tw_im, 256)
        _radix8(z, 528, 792, 0, 264, tw_re, tw_im, 192, 64, 4)
        _radix8(z, 0, 264, 528, 792, tw_re, tw_im, 248, 8, 32)
        _split(z, 528, 792, post_re, post_im, power, 256)
    elif m == 1024:
        _window(frame, window, z, 1024, 1032)
        _first_radix4(z, 0, 1032, 2064, 3096, tw_re, tw_im, 1024)
        _radix8(z, 2064, 3096, 0, 1032, tw_re, tw_im, 768, 256, 4)
        _radix8(z, 0, 1032, 2064, 3096, tw_re, tw_im, 992, 32, 32)
        _radix4(z, 2064, 3096, 0, 1032, tw_re, tw_im, 1020, 4, 256)
        _split(z, 0, 1032, post_re, post_im, power, 1024)
    else:
        lz = m + SKEW
        _window(frame, window, z, m, lz)
        out = _stages(z, lz, tw_re, tw_im, m)
        _split(z, out, out + lz, post_re, post_im, power, m)


@njit(cache=True, error_model="numpy", inline="always")
def _window(frame, window, z, m, lz):
    """x = windowed frame, even samples as re, odd as im (a loop of its own vectorises)."""
    lz = np.uint64(lz)
    for j in range(np.uint64(m)):
        z[j] = window[_U2 * j] * frame[_U2 * j]
        z[lz + j] = window[_U2 * j + _U1] * frame[_U2 * j + _U1]


@njit(cache=True, error_model="numpy")
def stage_radix(n):
    """Radix of a stage after the first (radix-4) one, with n points per sub-transform left: 8 while
    3 or more bits remain (a radix-8 stage at stride 4 vectorises where radix-4 does not), then 4 or 2."""
    return 8 if n >= 8 else n


@njit(cache=True, error_model="numpy")
def _stages(z, lz, tw_re, tw_im, m):
    """The complex FFT of x (m points) for sizes not spelled out; returns the result's offset in z
    (0: x, 2*lz: y). Radix 4 first, then `stage_radix` (the stages filters.fft_tables builds)."""
    src = 0
    dst = 2 * lz
    if m == 2:
        _radix2(z, src, src + lz, dst, dst + lz, 1)
        return dst
    _first_radix4(z, src, src + lz, dst, dst + lz, tw_re, tw_im, m)
    n = m // 4
    s = 4
    o = 3 * n
    while n > 1:
        src, dst = dst, src
        r = stage_radix(n)
        if r == 8:
            _radix8(z, src, src + lz, dst, dst + lz, tw_re, tw_im, o, n, s)
        elif r == 4:
            _radix4(z, src, src + lz, dst, dst + lz, tw_re, tw_im, o, n, s)
        else:
            _radix2(z, src, src + lz, dst, dst + lz, s)
        o += (r - 1) * (n // r)
        n //= r
        s *= r
    return dst


@njit(cache=True, error_model="numpy", inline="always")
def _first_radix4(z, xr, xi, yr, yi, tw_re, tw_im, m):
    """Stage 1 (length m, stride 1): y[4p+k] from x[p + k*m/4]; the four results of a butterfly
    are stored interleaved, which the vectoriser does with shuffles."""
    xr = np.uint64(xr)
    xi = np.uint64(xi)
    yr = np.uint64(yr)
    yi = np.uint64(yi)
    n1 = np.uint64(m) // _U4
    for p in range(n1):
        k = _U4 * p
        a = xr + p
        b = xi + p
        (z[yr + k], z[yi + k], z[yr + k + _U1], z[yi + k + _U1], z[yr + k + _U2], z[yi + k + _U2],
         z[yr + k + _U3], z[yi + k + _U3]) = _butterfly4(
            z[a], z[b], z[a + n1], z[b + n1], z[a + _U2 * n1], z[b + _U2 * n1], z[a + _U3 * n1], z[b + _U3 * n1],
            tw_re[p], tw_im[p], tw_re[n1 + p], tw_im[n1 + p], tw_re[_U2 * n1 + p], tw_im[_U2 * n1 + p])


@njit(cache=True, error_model="numpy", inline="always")
def _stage_indices(xr, xi, yr, yi, o, s, n, radix):
    """A stage's offsets, twiddle offset and stride as uint64, and its butterflies per stride (n/radix)."""
    return (np.uint64(xr), np.uint64(xi), np.uint64(yr), np.uint64(yi), np.uint64(o), np.uint64(s),
            np.uint64(n) // radix)


@njit(cache=True, error_model="numpy", inline="always")
def _radix4(z, xr, xi, yr, yi, tw_re, tw_im, o, n, s):
    """Radix-4 stage of length n, stride s: y[q + s(4p+k)] from x[q + s(p + k*n/4)], twiddles at o.

    The inner loop runs over s contiguous samples with the twiddles fixed, and vectorises."""
    xr, xi, yr, yi, o, s, n1 = _stage_indices(xr, xi, yr, yi, o, s, n, _U4)
    qt = n1 * s
    for p in range(n1):
        w1r = tw_re[o + p]
        w1i = tw_im[o + p]
        w2r = tw_re[o + n1 + p]
        w2i = tw_im[o + n1 + p]
        w3r = tw_re[o + _U2 * n1 + p]
        w3i = tw_im[o + _U2 * n1 + p]
        for q in range(s):
            a = xr + q + s * p
            b = xi + q + s * p
            c = yr + q + _U4 * s * p
            d = yi + q + _U4 * s * p
            z[c], z[d], z[c + s], z[d + s], z[c + _U2 * s], z[d + _U2 * s], z[c + _U3 * s], z[d + _U3 * s] = (
                _butterfly4(z[a], z[b], z[a + qt], z[b + qt], z[a + _U2 * qt], z[b + _U2 * qt], z[a + _U3 * qt],
                            z[b + _U3 * qt], w1r, w1i, w2r, w2i, w3r, w3i))


@njit(cache=True, error_model="numpy", inline="always")
def _radix8(z, xr, xi, yr, yi, tw_re, tw_im, o, n, s):
    """Radix-8 stage of length n, stride s: y[q + s(8p+k)] = w_n^(pk) * DFT8(x[q + s(p + j*n/8)])_k.

    Its body is large enough that LLVM does not unroll an inner loop of 4 (stride 4) but
    vectorises it, which a radix-4 stage at that stride does not get."""
    xr, xi, yr, yi, o, s, n1 = _stage_indices(xr, xi, yr, yi, o, s, n, _U8)
    qt = n1 * s
    for p in range(n1):
        t = o + p
        w1r, w1i = tw_re[t], tw_im[t]
        w2r, w2i = tw_re[t + n1], tw_im[t + n1]
        w3r, w3i = tw_re[t + _U2 * n1], tw_im[t + _U2 * n1]
        w4r, w4i = tw_re[t + _U3 * n1], tw_im[t + _U3 * n1]
        w5r, w5i = tw_re[t + _U4 * n1], tw_im[t + _U4 * n1]
        w6r, w6i = tw_re[t + _U5 * n1], tw_im[t + _U5 * n1]
        w7r, w7i = tw_re[t + _U6 * n1], tw_im[t + _U6 * n1]
        for q in range(s):
            a = xr + q + s * p
            b = xi + q + s * p
            (x0r, x0i, x1r, x1i, x2r, x2i, x3r, x3i, x4r, x4i, x5r, x5i, x6r, x6i, x7r, x7i) = _butterfly8(
                z[a], z[b], z[a + qt], z[b + qt], z[a + _U2 * qt], z[b + _U2 * qt], z[a + _U3 * qt], z[b + _U3 * qt],
                z[a + _U4 * qt], z[b + _U4 * qt], z[a + _U5 * qt], z[b + _U5 * qt], z[a + _U6 * qt], z[b + _U6 * qt],
                z[a + _U7 * qt], z[b + _U7 * qt])
            c = yr + q + _U8 * s * p
            d = yi + q + _U8 * s * p
            z[c] = x0r
            z[d] = x0i
            z[c + s], z[d + s] = _cmul(x1r, x1i, w1r, w1i)
            z[c + _U2 * s], z[d + _U2 * s] = _cmul(x2r, x2i, w2r, w2i)
            z[c + _U3 * s], z[d + _U3 * s] = _cmul(x3r, x3i, w3r, w3i)
            z[c + _U4 * s], z[d + _U4 * s] = _cmul(x4r, x4i, w4r, w4i)
            z[c + _U5 * s], z[d + _U5 * s] = _cmul(x5r, x5i, w5r, w5i)
            z[c + _U6 * s], z[d + _U6 * s] = _cmul(x6r, x6i, w6r, w6i)
            z[c + _U7 * s], z[d + _U7 * s] = _cmul(x7r, x7i, w7r, w7i)


@njit(cache=True, error_model="numpy", inline="always")
def _radix2(z, xr, xi, yr, yi, s):
    """Last stage when 1 bit is left (n = 2, stride s): y[q], y[q+s] = x[q] +- x[q+s]."""
    xr = np.uint64(xr)
    xi = np.uint64(xi)
    yr = np.uint64(yr)
    yi = np.uint64(yi)
    s = np.uint64(s)
    for q in range(s):
        ar = z[xr + q]
        ai = z[xi + q]
        br = z[xr + q + s]
        bi = z[xi + q + s]
        z[yr + q] = ar + br
        z[yi + q] = ai + bi
        z[yr + q + s] = ar - br
        z[yi + q + s] = ai - bi


@njit(cache=True, error_model="numpy", inline="always")
def _cmul(ar, ai, br, bi):
    return ar * br - ai * bi, ar * bi + ai * br


@njit(cache=True, error_model="numpy", inline="always")
def _butterfly4(ar, ai, br, bi, cr, ci, dr, di, w1r, w1i, w2r, w2i, w3r, w3i):
    """Radix-4 DIF butterfly: (a+b+c+d, w1(a-ib-c+id), w2(a-b+c-d), w3(a+ib-c-id)), re/im pairs."""
    apcr = ar + cr
    apci = ai + ci
    amcr = ar - cr
    amci = ai - ci
    bpdr = br + dr
    bpdi = bi + di
    bmdr = br - dr
    bmdi = bi - di
    t1r = amcr + bmdi
    t1i = amci - bmdr
    t2r = apcr - bpdr
    t2i = apci - bpdi
    t3r = amcr - bmdi
    t3i = amci + bmdr
    return (apcr + bpdr, apci + bpdi,
            t1r * w1r - t1i * w1i, t1r * w1i + t1i * w1r,
            t2r * w2r - t2i * w2i, t2r * w2i + t2i * w2r,
            t3r * w3r - t3i * w3i, t3r * w3i + t3i * w3r)


@njit(cache=True, error_model="numpy", inline="always")
def _butterfly8(a0r, a0i, a1r, a1i, a2r, a2i, a3r, a3i, a4r, a4i, a5r, a5i, a6r, a6i, a7r, a7i):
    """8-point DFT X_k = sum_j a_j W^(jk), W = exp(-2*pi*i/8): radix-2 split, then two DFT4s.

    b_j = a_j + a_(j+4) gives the even X, c_j = (a_j - a_(j+4)) W^j the odd X."""
    b0r = a0r + a4r
    b0i = a0i + a4i
    b1r = a1r + a5r
    b1i = a1i + a5i
    b2r = a2r + a6r
    b2i = a2i + a6i
    b3r = a3r + a7r
    b3i = a3i + a7i
    c0r = a0r - a4r
    c0i = a0i - a4i
    dr = a1r - a5r  # W = (1 - i)/sqrt(2)
    di = a1i - a5i
    c1r = (dr + di) * _SQRT_HALF
    c1i = (di - dr) * _SQRT_HALF
    c2r = a2i - a6i  # W^2 = -i
    c2i = a6r - a2r
    dr = a3r - a7r  # W^3 = (-1 - i)/sqrt(2)
    di = a3i - a7i
    c3r = (di - dr) * _SQRT_HALF
    c3i = -(dr + di) * _SQRT_HALF
    e0r = b0r + b2r
    e0i = b0i + b2i
    e1r = b0r - b2r
    e1i = b0i - b2i
    e2r = b1r + b3r
    e2i = b1i + b3i
    e3r = b1r - b3r
    e3i = b1i - b3i
    f0r = c0r + c2r
    f0i = c0i + c2i
    f1r = c0r - c2r
    f1i = c0i - c2i
    f2r = c1r + c3r
    f2i = c1i + c3i
    f3r = c1r - c3r
    f3i = c1i - c3i
    return (e0r + e2r, e0i + e2i, f0r + f2r, f0i + f2i,
            e1r + e3i, e1i - e3r, f1r + f3i, f1i - f3r,
            e0r - e2r, e0i - e2i, f0r - f2r, f0i - f2i,
            e1r - e3i, e1i + e3r, f1r - f3i, f1i + f3r)


@njit(cache=True, error_model="numpy", inline="always")
def _split(z, zr, zi, post_re, post_im, power, m):
    """Real-FFT split, squared: X[k] = E[k] + W^k O[k], with 2E[k] = Z[k] + conj(Z[m-k]) and
    2O[k] = -i(Z[k] - conj(Z[m-k])); k = 0 and m use Z[0] alone, and the loop over 0 < k < m
    (Z read forwards and backwards) vectorises."""
    zr = np.uint64(zr)
    zi = np.uint64(zi)
    power[0] = (z[zr] + z[zi]) * (z[zr] + z[zi])
    power[m] = (z[zr] - z[zi]) * (z[zr] - z[zi])
    mu = np.uint64(m)
    for k in range(_U1, mu):
        ar = z[zr + k]
        ai = z[zi + k]
        br = z[zr + mu - k]
        bi = z[zi + mu - k]
        er = ar + br
        ei = ai - bi
        orr = ai + bi
        oi = br - ar
        c = post_re[k]
        s = post_im[k]
        re = er + (c * orr - s * oi)
        im = ei + (c * oi + s * orr)
        power[k] = 0.25 * (re * re + im * im)


# ---- mel, dB, DCT ------------------------------------------------------------------------------

@njit(cache=True, error_model="numpy")
def mel_frame(power, seg, w1, w2, out):
    """Mel bands from a power spectrum, each bin read once.

    A bin feeds at most two adjacent triangles: w1[k] goes to band b and w2[k] to band b+1
    for the bins k in seg[b]..seg[b+1]-1 (see filters.mel_plan). The sums are plain scalar
    loops: most segments are a few bins long, where vectorised reductions cost more than
    they save (measured 2.3x slower)."""
    carry = 0.0
    for b in range(out.shape[0]):
        s = 0.0
        t = 0.0
        for k in range(np.uint64(seg[b]), np.uint64(seg[b + 1])):
            s += w1[k] * power[k]
            t += w2[k] * power[k]
        out[b] = carry + s
        carry = t


@njit(cache=True, error_model="numpy")
def db(x, amin, ref_db):
    """librosa.power_to_db for one float64 value: 10*log10(max(amin, x)) - 10*log10(max(amin, ref)),
    NaN propagating like np.maximum."""
    return 10.0 * math.log10(amin if x <= amin else x) - ref_db


_F32_DB = np.float32(10.0 / math.log(10.0))  # 10*log10(x) = ln(x) * 10/ln(10)


@njit(cache=True, error_model="numpy")
def db32_into(x, e, amin, ln_amin, ref_db):
    """librosa's float32 power_to_db in place: x = 10*log10(max(amin, x)) - ref_db, float32.

    Through ln32_into, so within ~2e-5 dB of the correctly rounded value, except that a value
    whose log equals amin's (ln_amin = ln32(float32(amin)), see `ln32`) gives exactly
    float32(float32(10*log10(amin)) - ref_db): digital silence reads -100 dB, as in librosa.
    x must be finite. e: float32 scratch as long as x."""
    a32 = np.float32(amin)
    r32 = np.float32(ref_db)
    floor = np.float32(np.float32(10.0 * math.log10(np.float64(a32))) - r32)
    for i in range(x.shape[0]):
        x[i] = a32 if x[i] <= a32 else x[i]
    ln32_into(x, e)
    for i in range(x.shape[0]):
        x[i] = floor if x[i] == ln_amin else x[i] * _F32_DB - r32


@njit(cache=True, error_model="numpy")
def dct_frame(x, rows, acc):
    """MFCC: acc[k] = sum_n dct[k, n] * x[n], float64, for k < len(acc).

    rows is the DCT matrix (len(acc) x width) flattened, zero beyond n_mels, and x is log-mel
    zero-padded to the width (a multiple of filters.DCT_ALIGN): a vectorised dot per
    coefficient with no remainder (the transposed form, over 16 coefficients, ran scalar)."""
    w = x.shape[0]
    for k in range(acc.shape[0]):
        acc[k] = _dot(rows[k * w:(k + 1) * w], x, 0, w)


# ---- energy features ---------------------------------------------------------------------------

@njit(cache=True, error_model="numpy")
def frame_stats(frame, threshold):
    """(rms, zcr, clipped) of the raw (unwindowed) frame in one call.

    rms = sqrt(mean(x^2)), librosa.feature.rms. zcr = sign changes between neighbours / frame
    length, librosa.feature.zero_crossing_rate: |x| <= threshold counts as 0, and 0 as
    non-negative (zero_pos=True). clipped = fraction of samples with |x| >= CLIP_LEVEL."""
    n = frame.shape[0]
    crossings = 0
    clipped = np.int64(abs(frame[0]) >= CLIP_LEVEL)
    for i in range(1, n):  # integer xor/compare: vectorises
        crossings += np.int64(frame[i] < -threshold) ^ np.int64(frame[i - 1] < -threshold)
        clipped += np.int64(abs(frame[i]) >= CLIP_LEVEL)
    return math.sqrt(_dot(frame, frame, 0, n) / n), crossings / n, clipped / n


_F32_MANT = np.uint32(0x007FFFFF)
_F32_SQRT2_MANT = np.uint32(0x3504F3)  # mantissa bits of sqrt(2)
_F32_ONE = np.uint32(0x3F800000)  # exponent bits of [1, 2)
_F32_HALF = np.uint32(0x3F000000)  # exponent bits of [0.5, 1)
_F32_LN2 = np.float32(math.log(2.0))
_F32_1 = np.float32(1.0)
_F32_C = (np.float32(2.0), np.float32(2.0 / 3.0), np.float32(2.0 / 5.0), np.float32(2.0 / 7.0), np.float32(2.0 / 9.0))


@njit(cache=True, error_model="numpy")
def ln32_into(x, e):
    """x = ln(x) in place for float32 x >= 0, in loops that vectorise 8 wide (math.log does not).

    x = 2^k f with f in [sqrt(.5), sqrt(2)); ln f = 2 atanh(s), s = (f-1)/(f+1), |s| < 0.172,
    by its series to s^9 (truncation < 3e-9): within a few float32 ulp of ln. ln 0 comes out
    as a finite -87.3, so 0 * ln 0 = 0; subnormals (< 1.2e-38) are not exact. e: scratch."""
    u = x.view(np.uint32)
    for i in range(x.shape[0]):
        bits = u[i]
        mant = bits & _F32_MANT
        big = mant > _F32_SQRT2_MANT
        e[i] = np.float32(np.int32(bits >> np.uint32(23)) - (126 if big else 127))
        u[i] = mant | (_F32_HALF if big else _F32_ONE)
    c0, c1, c2, c3, c4 = _F32_C
    for i in range(x.shape[0]):
        f = x[i]
        s = (f - _F32_1) / (f + _F32_1)
        z = s * s
        x[i] = e[i] * _F32_LN2 + s * ((((c4 * z + c3) * z + c2) * z + c1) * z + c0)




def ln32(value: float) -> np.float32:
    """ln32_into of one value (what db32_into compares against)."""
    x = np.array([value], np.float32)
    ln32_into(x, np.empty_like(x))
    return x[0]


@njit(cache=True, error_model="numpy")
def entropy_frame(power, scratch):
    """Shannon entropy of the frame's normalised power spectrum, divided by log(n_bins).

    p_k = P_k / sum(P) over all n_fft//2+1 bins; H = -sum p_k ln p_k / ln(n_bins), in [0, 1]:
    0 = all power in one bin (pure tone), 1 = flat spectrum; ~0.92 for white noise (the
    expected periodogram is flat, single frames fluctuate). A frame with no power gives 0.
    ln p_k is taken in float32 (twice the SIMD width): H is good to ~1e-7, plenty for a 0..1
    feature. scratch: float64, at least n_bins long (used as two float32 buffers).
    """
    n = power.shape[0]
    total = _sum(power, 0, n)
    if not total > 0.0:
        return 0.0
    inv = 1.0 / total
    s32 = scratch.view(np.float32)
    ln_p = s32[:n]
    for i in range(n):
        ln_p[i] = np.float32(power[i] * inv)
    ln32_into(ln_p, s32[n:2 * n])
    h = -_dot(power, ln_p, 0, n) * inv / math.log(n)
    return min(max(h, 0.0), 1.0)


@njit(cache=True, error_model="numpy")
def envelope_frame(power, lo, hi, scale):
    """Band-limited energy in dBFS: 10*log10(scale * sum(P[lo:hi])), floored at -100 dB.

    scale = 2 / (n_fft * sum(window^2)) turns the one-sided windowed power into the mean
    square of the band's signal, so a full-scale sine in the band reads -3 dBFS."""
    return 10.0 * math.log10(max(ENVELOPE_FLOOR, scale * _sum(power, lo, hi)))


@njit(cache=True, error_model="numpy")
def check_finite(y):
    """Index of the first NaN/inf sample, or -1 (one pass, no temporary)."""
    for i in range(y.shape[0]):
        v = y[i]
        if v - v != 0:  # inf - inf and NaN - NaN are NaN; for integers this folds to False
            return i
    return -1


@njit(cache=True, error_model="numpy")
def n_frames(n, frame_length, hop):
    return 0 if n < frame_length else 1 + (n - frame_length) // hop


@njit(cache=True, error_model="numpy")
def _scratch(n_fft):
    """FFT scratch z, power and entropy scratch (n_fft/2+1 each)."""
    m = n_fft // 2
    return np.empty(fft_scratch_size(n_fft)), np.empty(m + 1), np.empty(m + 1)


# ---- batch drivers (the signal is already padded; frame t starts at t*hop) -------------------

@njit(cache=True, error_model="numpy")
def batch_mel(y, n_fft, hop, window, tw_re, tw_im, post_re, post_im, seg, w1, w2, magnitude, out):
    """Mel spectrogram (n_mels x T) into `out` (float32 or float64); `magnitude` uses |X| not |X|^2."""
    z, power, _ = _scratch(n_fft)
    col = np.empty(out.shape[0])
    for t in range(out.shape[1]):
        power_frame(y[t * hop:t * hop + n_fft], window, tw_re, tw_im, post_re, post_im, z, power)
        if magnitude:
            for k in range(power.shape[0]):
                power[k] = math.sqrt(power[k])
        mel_frame(power, seg, w1, w2, col)
        for b in range(col.shape[0]):
            out[b, t] = col[b]


@njit(cache=True, error_model="numpy")
def batch_apply_mel(S, seg, w1, w2, out):
    """Mel basis applied to a given spectrogram S (n_bins x T)."""
    col = np.empty(S.shape[0])
    mel = np.empty(out.shape[0])
    for t in range(S.shape[1]):
        for k in range(S.shape[0]):
            col[k] = S[k, t]
        mel_frame(col, seg, w1, w2, mel)
        for b in range(mel.shape[0]):
            out[b, t] = mel[b]


@njit(cache=True, error_model="numpy")
def batch_db(S, amin, ref_db, out):
    for i in range(S.shape[0]):
        out[i] = db(S[i], amin, ref_db)


@njit(cache=True, error_model="numpy")
def batch_db32(S, amin, ln_amin, ref_db):
    """float32 power_to_db of a flat float32 array, in place (see db32_into)."""
    db32_into(S, np.empty_like(S), amin, ln_amin, ref_db)


@njit(cache=True, error_model="numpy")
def batch_dct(S, rows, width, out):
    col = np.zeros(width)
    acc = np.empty(out.shape[0])
    for t in range(S.shape[1]):
        for n in range(S.shape[0]):
            col[n] = S[n, t]
        dct_frame(col, rows, acc)
        for k in range(out.shape[0]):
            out[k, t] = acc[k]


@njit(cache=True, error_model="numpy")
def batch_rms(y, frame_length, hop, out):
    for t in range(out.shape[1]):
        out[0, t] = frame_stats(y[t * hop:t * hop + frame_length], ZC_THRESHOLD)[0]


@njit(cache=True, error_model="numpy")
def batch_zcr(y, frame_length, hop, threshold, out):
    for t in range(out.shape[1]):
        out[0, t] = frame_stats(y[t * hop:t * hop + frame_length], threshold)[1]


@njit(cache=True, error_model="numpy")
def batch_spectral(y, n_fft, hop, window, tw_re, tw_im, post_re, post_im, lo, hi, scale, entropy, envelope):
    """Spectral entropy and band-energy envelope (1 x T each) from one FFT per frame."""
    z, power, scratch = _scratch(n_fft)
    for t in range(entropy.shape[1]):
        power_frame(y[t * hop:t * hop + n_fft], window, tw_re, tw_im, post_re, post_im, z, power)
        entropy[0, t] = entropy_frame(power, scratch)
        envelope[0, t] = envelope_frame(power, lo, hi, scale)


# ---- streaming: all features of one frame, and the push loop ---------------------------------
# A configuration's constant tables travel as one packed float64 array (the plan; integer
# tables are stored as int64 bit patterns and viewed back), a stream's samples and scratch as
# one float64 array (the state, which stays put and so stays in cache), and its output frames
# in a float32 array (the room), so a push is one numba call with four array arguments.
# Frames are written frame-major (n_features floats each) at the state's cursor and never
# rewritten: when the room runs out the owner starts a new one, so frames already handed out
# stay valid.
# plan: header (PLAN_HEADER values) = n_fft, hop, n_mels, n_mfcc, dct width, env_lo, env_hi,
# env_scale, ln32(LOG_MEL_AMIN), then the offsets of window, tw_re, tw_im, post_re, post_im, seg, w1, w2,
# dct rows and the plan's length.
# state: header (STATE_HEADER values) = fill, start, cursor; the sample buffer (2*n_fft); scratch
# z (fft_scratch_size; the entropy's scratch too), power (n_fft/2+1), mel (n_mels), log-mel
# float32 value and log scratch (n_mels each), log-mel in float64 zero-padded to the dct width,
# mfcc accumulator (n_mfcc).
PLAN_HEADER = 19
STATE_HEADER = 3


@njit(cache=True, error_model="numpy")
def n_features(n_mels, n_mfcc):
    """Rows of a frame block: log-mel, mfcc, rms, zcr, spectral entropy, energy envelope, clipped."""
    return n_mels + n_mfcc + 5


@njit(cache=True, error_model="numpy")
def state_size(n_fft, n_mels, n_mfcc):
    """float64 values of a stream's state."""
    width = (n_mels + 15) // 16 * 16  # filters.dct_plan's row width
    return STATE_HEADER + 2 * n_fft + fft_scratch_size(n_fft) + n_fft // 2 + 1 + 2 * n_mels + width + n_mfcc


@njit(cache=True, error_model="numpy")
def unpack(plan, state):
    """Views of the plan's tables and the state's scratch, taken once per call, not per frame."""
    n_fft = int(plan[0])
    n_mels = int(plan[2])
    n_mfcc = int(plan[3])
    width = int(plan[4])
    m = n_fft // 2
    nb = m + 1
    o = PLAN_HEADER - 10
    window = plan[int(plan[o]):int(plan[o + 1])]
    tw_re = plan[int(plan[o + 1]):int(plan[o + 2])]
    tw_im = plan[int(plan[o + 2]):int(plan[o + 3])]
    post_re = plan[int(plan[o + 3]):int(plan[o + 4])]
    post_im = plan[int(plan[o + 4]):int(plan[o + 5])]
    seg = plan[int(plan[o + 5]):int(plan[o + 6])].view(np.int64)
    w1 = plan[int(plan[o + 6]):int(plan[o + 7])]
    w2 = plan[int(plan[o + 7]):int(plan[o + 8])]
    dct_rows = plan[int(plan[o + 8]):int(plan[o + 9])]
    s = STATE_HEADER + 2 * n_fft
    z = state[s:s + fft_scratch_size(n_fft)]
    s += fft_scratch_size(n_fft)
    ent = z[:nb]  # the entropy's scratch: the FFT's is free once the power spectrum is out
    power = state[s:s + nb]
    s += nb
    mel = state[s:s + n_mels]
    log32 = state[s + n_mels:s + 2 * n_mels].view(np.float32)  # log-mel values, then the log's scratch
    s += 2 * n_mels
    x = state[s:s + width]  # zero beyond n_mels: the state starts as zeros and only [:n_mels] is written
    acc = state[s + width:s + width + n_mfcc]
    return (window, tw_re, tw_im, post_re, post_im, seg, w1, w2, dct_rows,
            z, power, ent, mel, log32[:n_mels], log32[n_mels:], x, acc,
            int(plan[5]), int(plan[6]), plan[7], np.float32(plan[8]))


@njit(cache=True, error_model="numpy", inline="always")
def frame_all(frame, out, o, window, tw_re, tw_im, post_re, post_im, seg, w1, w2, dct_rows,
              z, power, ent, mel, logmel, log_scratch, x, acc, env_lo, env_hi, env_scale, ln_amin):
    """Every feature of one n_fft frame into out[o:o + n_features] (flat float32); the rest is
    `unpack(...)`, unpacked once per call by the caller: inlined, as a tuple unpacked per
    frame (a reference count per array per frame) or as a called function with 24 array
    arguments, a frame costs 5-15% more (measured)."""
    n_mels = mel.shape[0]
    n_mfcc = acc.shape[0]
    power_frame(frame, window, tw_re, tw_im, post_re, post_im, z, power)
    mel_frame(power, seg, w1, w2, mel)
    for b in range(n_mels):  # float32 hand-offs, as melspectrogram -> power_to_db -> dct in float32
        logmel[b] = np.float32(mel[b])
    db32_into(logmel, log_scratch, LOG_MEL_AMIN, ln_amin, 0.0)
    for b in range(n_mels):
        x[b] = logmel[b]
    dct_frame(x, dct_rows, acc)
    o = np.uint64(o)  # uint64: no wraparound selects, which would turn the stores into scatters
    for b in range(np.uint64(n_mels)):
        out[o + b] = logmel[b]
    o += np.uint64(n_mels)
    for k in range(np.uint64(n_mfcc)):
        out[o + k] = np.float32(acc[k])
    o += np.uint64(n_mfcc)
    rms, zcr, clipped = frame_stats(frame, ZC_THRESHOLD)
    out[o] = rms
    out[o + _U1] = zcr
    out[o + _U2] = entropy_frame(power, ent)
    out[o + _U3] = envelope_frame(power, env_lo, env_hi, env_scale)
    out[o + _U4] = clipped


_PLAN = types.Array(types.float64, 1, "C", readonly=True)
_STATE = types.Array(types.float64, 1, "C")
_ROOM = types.Array(types.float32, 1, "C")


@njit(cache=True, error_model="numpy")
def _append(pcm, i, take, buf, fill, scale):
    """buf[fill:fill+take] = pcm[i:i+take] rounded to float32 (int16 scaled by `scale`)."""
    src = pcm[i:i + take]
    dst = buf[fill:fill + take]
    for j in range(take):
        dst[j] = np.float32(src[j] * scale)


# Compiled for exactly these: another dtype or layout is a TypeError for the caller to normalise.
@njit([types.intp(types.Array(t, 1, "C"), _PLAN, _STATE, _ROOM) for t in (types.int16, types.float32)],
      cache=True, error_model="numpy")
def stream_push(pcm, plan, state, room):
    """Append pcm (any length) to the stream, writing the frames it completes into `room` at
    the state's cursor; returns how many. If the room cannot take them all, returns minus
    their number and changes nothing: the owner gives it a new room and pushes again.

    Samples go into a buffer of 2*n_fft, appended in one pass and read in place by every frame
    that ends there; when it is full the samples not yet framed (fewer than n_fft) move to its
    front. That costs a copy of under n_fft samples every few frames, instead of shifting the
    window by hop after every frame. pcm is int16 (scaled by 1/32768) or float32, like the
    float32 batch API. Raises ValueError before touching the state if pcm holds NaN/inf."""
    scale = 1.0 / 32768.0 if pcm.itemsize == 2 else 1.0  # a constant in each compiled variant
    if check_finite(pcm) >= 0:
        raise ValueError("audio contains NaN or inf")
    n_fft = int(plan[0])
    hop = int(plan[1])
    fill = int(state[0])  # samples in the buffer
    start = int(state[1])  # where the next frame starts (past fill while skipping, for hop > n_fft)
    size = 2 * n_fft
    buf = state[STATE_HEADER:STATE_HEADER + size]
    n = pcm.shape[0]
    if fill + n < start + n_fft and fill + n <= size:  # no frame completes: append and go
        _append(pcm, 0, n, buf, fill, scale)
        state[0] = fill + n
        return 0
    rows = n_features(int(plan[2]), int(plan[3]))
    cursor = int(state[2])
    cap = room.shape[0] // rows
    due = fill + n - start - n_fft  # frames at start, start + hop, ... end within the samples
    count = 0 if due < 0 else 1 + due // hop
    if cursor + count > cap:
        return -count
    (window, tw_re, tw_im, post_re, post_im, seg, w1, w2, dct_rows, z, power, ent, mel, logmel, log_scratch, x, acc,
     env_lo, env_hi, env_scale, ln_amin) = unpack(plan, state)
    t = 0
    i = 0
    while i < n:
        if fill == size:  # full: keep what the next frames still need
            if start < fill:
                keep = fill - start
                for j in range(keep):  # keep < n_fft <= start: no overlap
                    buf[j] = buf[start + j]
                fill = keep
                start = 0
            else:
                start -= fill
                fill = 0
        take = min(size - fill, n - i)
        _append(pcm, i, take, buf, fill, scale)
        fill += take
        i += take
        while start + n_fft <= fill:  # `count` frames in all, checked above to fit
            frame_all(buf[start:start + n_fft], room, cursor * rows, window, tw_re, tw_im, post_re, post_im, seg, w1,
                      w2, dct_rows, z, power, ent, mel, logmel, log_scratch, x, acc, env_lo, env_hi, env_scale, ln_amin)
            cursor += 1
            t += 1
            start += hop
    state[0] = fill
    state[1] = start
    state[2] = cursor
    return t


@njit(cache=True, error_model="numpy")
def frames_all(y, hop, plan):
    """Every feature for every full frame of y (center=False), frame-major (frames x features):
    the batch twin of stream_push."""
    n_fft = int(plan[0])
    total = n_frames(y.shape[0], n_fft, hop)
    rows = n_features(int(plan[2]), int(plan[3]))
    out = np.empty((total, rows), np.float32)
    flat = out.reshape(total * rows)
    state = np.zeros(state_size(n_fft, int(plan[2]), int(plan[3])))
    (window, tw_re, tw_im, post_re, post_im, seg, w1, w2, dct_rows, z, power, ent, mel, logmel, log_scratch, x, acc,
     env_lo, env_hi, env_scale, ln_amin) = unpack(plan, state)
    for t in range(total):
        frame_all(y[t * hop:t * hop + n_fft], flat, t * rows, window, tw_re, tw_im, post_re, post_im, seg, w1, w2,
                  dct_rows, z, power, ent, mel, logmel, log_scratch, x, acc, env_lo, env_hi, env_scale, ln_amin)
    return out


# ---- analytics: syllable-nucleus (energy envelope peak) counter with hysteresis --------------

@njit(cache=True, error_model="numpy")
def count_peaks(envelope, state, rise_db, dip_db, floor_db):
    """Count peaks of the moving-average-smoothed envelope that rise >= rise_db above the
    preceding valley, reach floor_db, and are then followed by a dip >= dip_db.

    state (carried across calls, so chunked input counts like one piece) is
    [valley, peak, armed, n_history, history...]: the moving average spans len(state) - 3
    values, the newest plus len(state) - 4 previous ones. Start from peak_state(smooth).
    Returns the number of peaks confirmed by this call."""
    valley = state[0]
    peak = state[1]
    armed = state[2] > 0.5
    n_hist = int(state[3])
    hist = state[4:]
    width = hist.shape[0]
    found = 0
    for v in envelope:
        acc = v
        for j in range(n_hist):
            acc += hist[j]
        smoothed = acc / (n_hist + 1)
        if width > 0:  # newest first
            for j in range(width - 1, 0, -1):
                hist[j] = hist[j - 1]
            hist[0] = v
            n_hist = min(n_hist + 1, width)
        if not armed:
            valley = min(valley, smoothed)
            if smoothed >= valley + rise_db and smoothed >= floor_db:
                armed = True
                peak = smoothed
        elif smoothed > peak:
            peak = smoothed
        elif smoothed <= peak - dip_db:
            found += 1
            armed = False
            valley = smoothed
    state[0] = valley
    state[1] = peak
    state[2] = 1.0 if armed else 0.0
    state[3] = n_hist
    return found


def peak_state(smooth: int) -> np.ndarray:
    """Initial count_peaks state for a moving average over `smooth` frames."""
    state = np.zeros(3 + max(1, smooth))
    state[0] = np.inf
    state[1] = -np.inf
    return state
