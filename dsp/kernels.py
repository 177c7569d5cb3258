"""numba kernels: one analysis frame in a few microseconds, shared by the batch API and the stream.

Every feature is computed by one per-frame function; the batch drivers and the streaming push
loop call the same functions, so a stream and the batch API give bit-identical frames.
Arithmetic is float64 without fastmath (no reassociation, no FMA contraction), so the same code
gives the same bits wherever it is inlined; error_model="numpy" drops the zero-division checks
that would otherwise stop loops from vectorising.
FFT: the real n_fft-point FFT is an n_fft/2-point complex FFT of the even/odd samples plus the
real-FFT split; the complex FFT is a constant-geometry radix-2 decimation in time, whose every
stage is one long loop that vectorises. A DFT matrix product would cost n_fft^2 multiply-adds
per frame instead of ~n_fft/4*log2(n_fft/2) butterflies (the benchmark measures both).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# Energy envelope band: where vowel (syllable nucleus) energy lives, above mains hum and below fricatives.
ENVELOPE_FMIN = 300.0
ENVELOPE_FMAX = 3400.0
ENVELOPE_FLOOR = 1e-10  # mean-square floor of the envelope (-100 dBFS)
ZC_THRESHOLD = 1e-10  # librosa.zero_crossings: |x| <= threshold counts as 0 (non-negative)
CLIP_LEVEL = 0.999  # |x| at or above this counts as clipped (int16 full scale is 0.99997)


@njit(cache=True, error_model="numpy")
def power_frame(frame, window, bitrev, tw_re, tw_im, post_re, post_im, xr, xi, yr, yi, power):
    """|rfft(window * frame)|^2 into `power` (n_fft//2+1); xr, xi, yr, yi are n_fft/2 scratch."""
    m = xr.shape[0]
    h = m // 2
    for n in range(m):  # even/odd samples as one complex sequence, in bit-reversed order
        r = bitrev[n]
        xr[r] = window[2 * n] * frame[2 * n]
        xi[r] = window[2 * n + 1] * frame[2 * n + 1]
    for i in range(h):  # stage 0: all twiddles are 1
        ar = xr[2 * i]
        ai = xi[2 * i]
        br = xr[2 * i + 1]
        bi = xi[2 * i + 1]
        yr[i] = ar + br
        yi[i] = ai + bi
        yr[i + h] = ar - br
        yi[i + h] = ai - bi
    flip = True  # the result is in y
    stages = tw_re.shape[0] // h  # flat twiddles, stage t at t*h
    if stages > 1:  # stage 1: twiddle 1 for the first half of the pairs, -i for the second
        q = h // 2
        for i in range(q):
            ar = yr[2 * i]
            ai = yi[2 * i]
            br = yr[2 * i + 1]
            bi = yi[2 * i + 1]
            xr[i] = ar + br
            xi[i] = ai + bi
            xr[i + h] = ar - br
            xi[i + h] = ai - bi
        for i in range(q, h):
            ar = yr[2 * i]
            ai = yi[2 * i]
            br = yr[2 * i + 1]
            bi = yi[2 * i + 1]
            xr[i] = ar + bi
            xi[i] = ai - br
            xr[i + h] = ar - bi
            xi[i + h] = ai + br
        flip = False
    for t in range(2, stages):
        wr = tw_re[t * h:(t + 1) * h]
        wi = tw_im[t * h:(t + 1) * h]
        if flip:
            _stage(yr, yi, xr, xi, wr, wi, h)
        else:
            _stage(xr, xi, yr, yi, wr, wi, h)
        flip = not flip
    zr = yr if flip else xr
    zi = yi if flip else xi
    for k in range(m + 1):  # split: X[k] = E[k] + W^k O[k], E/O the spectra of even/odd samples
        ka = k if k < m else 0
        kb = m - k if k > 0 else 0
        ar = zr[ka]
        ai = zi[ka]
        br = zr[kb]
        bi = -zi[kb]
        er = 0.5 * (ar + br)
        ei = 0.5 * (ai + bi)
        orr = 0.5 * (ai - bi)
        oi = -0.5 * (ar - br)
        c = post_re[k]
        s = post_im[k]
        re = er + c * orr - s * oi
        im = ei + c * oi + s * orr
        power[k] = re * re + im * im


@njit(cache=True, error_model="numpy")
def _stage(xr, xi, yr, yi, wr, wi, h):
    """One constant-geometry DIT stage: y[i], y[i+h] = x[2i] +- w[i] x[2i+1]."""
    for i in range(h):
        ar = xr[2 * i]
        ai = xi[2 * i]
        br = xr[2 * i + 1]
        bi = xi[2 * i + 1]
        c = wr[i]
        s = wi[i]
        tr = br * c - bi * s
        ti = br * s + bi * c
        yr[i] = ar + tr
        yi[i] = ai + ti
        yr[i + h] = ar - tr
        yi[i + h] = ai - ti


@njit(cache=True, error_model="numpy")
def mel_frame(power, starts, lengths, offsets, weights, out):
    """Sparse product: each band sums its contiguous run of non-zero triangle weights."""
    for b in range(starts.shape[0]):
        acc0 = 0.0
        acc1 = 0.0
        s = starts[b]
        o = offsets[b]
        n = lengths[b]
        j = 0
        while j + 2 <= n:  # two interleaved sums halve the dependency chain
            acc0 += weights[o + j] * power[s + j]
            acc1 += weights[o + j + 1] * power[s + j + 1]
            j += 2
        if j < n:
            acc0 += weights[o + j] * power[s + j]
        out[b] = acc0 + acc1


@njit(cache=True, error_model="numpy")
def db(x, amin, ref_db):
    """librosa.power_to_db for one value: 10*log10(max(amin, x)) - 10*log10(max(amin, ref))."""
    return 10.0 * math.log10(max(amin, x)) - ref_db


@njit(cache=True, error_model="numpy")
def dct_frame(logmel, dct_t, out):
    """out[k] = sum_n dct[k, n] * logmel[n], n ascending. dct_t is the transposed matrix
    (n_mels x n_out) flattened, so the loop over k vectorises while each sum keeps the order
    of a plain dot product."""
    n_out = out.shape[0]
    for k in range(n_out):
        out[k] = 0.0
    for n in range(logmel.shape[0]):
        x = logmel[n]
        row = dct_t[n * n_out:(n + 1) * n_out]
        for k in range(n_out):
            out[k] += row[k] * x


@njit(cache=True, error_model="numpy")
def _sum(a, lo, hi):
    """Sum of a[lo:hi] with four interleaved partial sums (fixed order: deterministic)."""
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    i = lo
    while i + 4 <= hi:
        s0 += a[i]
        s1 += a[i + 1]
        s2 += a[i + 2]
        s3 += a[i + 3]
        i += 4
    while i < hi:
        s0 += a[i]
        i += 1
    return (s0 + s1) + (s2 + s3)


@njit(cache=True, error_model="numpy")
def frame_stats(frame, threshold):
    """(rms, zcr, clipped) of the raw (unwindowed) frame in one call.

    rms = sqrt(mean(x^2)), librosa.feature.rms. zcr = sign changes between neighbours / frame
    length, librosa.feature.zero_crossing_rate: |x| <= threshold counts as 0, and 0 as
    non-negative (zero_pos=True). clipped = fraction of samples with |x| >= CLIP_LEVEL."""
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    crossings = 0
    clipped = 0
    n = frame.shape[0]
    for i in range(1, n):  # integer xor/abs compare: both loops vectorise
        crossings += np.int64(frame[i] < -threshold) ^ np.int64(frame[i - 1] < -threshold)
    for i in range(n):
        clipped += np.int64(abs(frame[i]) >= CLIP_LEVEL)
    i = 0
    while i + 4 <= n:
        s0 += frame[i] * frame[i]
        s1 += frame[i + 1] * frame[i + 1]
        s2 += frame[i + 2] * frame[i + 2]
        s3 += frame[i + 3] * frame[i + 3]
        i += 4
    while i < n:
        s0 += frame[i] * frame[i]
        i += 1
    return math.sqrt(((s0 + s1) + (s2 + s3)) / n), crossings / n, clipped / n


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
    a0 = 0.0
    a1 = 0.0
    a2 = 0.0
    a3 = 0.0
    i = 0
    while i + 4 <= n:
        a0 += power[i] * ln_p[i]
        a1 += power[i + 1] * ln_p[i + 1]
        a2 += power[i + 2] * ln_p[i + 2]
        a3 += power[i + 3] * ln_p[i + 3]
        i += 4
    while i < n:
        a0 += power[i] * ln_p[i]
        i += 1
    h = -((a0 + a1) + (a2 + a3)) * inv / math.log(n)
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
    """FFT scratch: xr, xi, yr, yi (n_fft/2 each), power and entropy scratch (n_fft/2+1 each)."""
    m = n_fft // 2
    return np.empty(m), np.empty(m), np.empty(m), np.empty(m), np.empty(m + 1), np.empty(m + 1)


# ---- batch drivers (the signal is already padded; frame t starts at t*hop) -------------------

@njit(cache=True, error_model="numpy")
def batch_mel(y, n_fft, hop, window, bitrev, tw_re, tw_im, post_re, post_im,
              starts, lengths, offsets, weights, magnitude, out):
    """Mel spectrogram (n_mels x T) into `out` (float32 or float64); `magnitude` uses |X| not |X|^2."""
    xr, xi, yr, yi, power, _ = _scratch(n_fft)
    col = np.empty(out.shape[0])
    for t in range(out.shape[1]):
        power_frame(y[t * hop:t * hop + n_fft], window, bitrev, tw_re, tw_im, post_re, post_im, xr, xi, yr, yi, power)
        if magnitude:
            for k in range(power.shape[0]):
                power[k] = math.sqrt(power[k])
        mel_frame(power, starts, lengths, offsets, weights, col)
        for b in range(col.shape[0]):
            out[b, t] = col[b]


@njit(cache=True, error_model="numpy")
def batch_apply_mel(S, starts, lengths, offsets, weights, out):
    """Mel basis applied to a given spectrogram S (n_bins x T)."""
    col = np.empty(S.shape[0])
    mel = np.empty(out.shape[0])
    for t in range(S.shape[1]):
        for k in range(S.shape[0]):
            col[k] = S[k, t]
        mel_frame(col, starts, lengths, offsets, weights, mel)
        for b in range(mel.shape[0]):
            out[b, t] = mel[b]


@njit(cache=True, error_model="numpy")
def batch_db(S, amin, ref_db, out):
    for i in range(S.shape[0]):
        out[i] = db(S[i], amin, ref_db)


@njit(cache=True, error_model="numpy")
def batch_dct(S, dct_t, out):
    col = np.empty(S.shape[0])
    res = np.empty(out.shape[0])
    for t in range(S.shape[1]):
        for n in range(S.shape[0]):
            col[n] = S[n, t]
        dct_frame(col, dct_t, res)
        for k in range(res.shape[0]):
            out[k, t] = res[k]


@njit(cache=True, error_model="numpy")
def batch_rms(y, frame_length, hop, out):
    for t in range(out.shape[1]):
        out[0, t] = frame_stats(y[t * hop:t * hop + frame_length], ZC_THRESHOLD)[0]


@njit(cache=True, error_model="numpy")
def batch_zcr(y, frame_length, hop, threshold, out):
    for t in range(out.shape[1]):
        out[0, t] = frame_stats(y[t * hop:t * hop + frame_length], threshold)[1]


@njit(cache=True, error_model="numpy")
def batch_spectral(y, n_fft, hop, window, bitrev, tw_re, tw_im, post_re, post_im, lo, hi, scale, entropy, envelope):
    """Spectral entropy and band-energy envelope (1 x T each) from one FFT per frame."""
    xr, xi, yr, yi, power, scratch = _scratch(n_fft)
    for t in range(entropy.shape[1]):
        power_frame(y[t * hop:t * hop + n_fft], window, bitrev, tw_re, tw_im, post_re, post_im, xr, xi, yr, yi, power)
        entropy[0, t] = entropy_frame(power, scratch)
        envelope[0, t] = envelope_frame(power, lo, hi, scale)


# ---- streaming: all features of one frame, and the push loop ---------------------------------
# A stream's constants travel as two packed arrays (fplan float64, iplan int64) and its state
# as one float64 array, so a push is one numba call with five array arguments (pcm, out too).
# iplan header (IPLAN_HEADER entries): n_fft, hop, n_mels, n_mfcc, env_lo, env_hi, fplan offsets of
# window, tw_re, tw_im, post_re, post_im, dct_t, mel weights (last), iplan offsets of bitrev, mel
# starts, lengths, offsets. fplan[0] is the envelope scale.
# state: fill, skip, then the sample buffer (n_fft), then scratch: xr, xi, yr, yi (n_fft/2 each),
# power, entropy scratch (n_fft/2+1 each), mel, logmel (n_mels each), mfcc (n_mfcc).
STATE_HEADER = 2
IPLAN_HEADER = 17


@njit(cache=True, error_model="numpy")
def n_features(n_mels, n_mfcc):
    """Rows of a frame block: log-mel, mfcc, rms, zcr, spectral entropy, energy envelope, clipped."""
    return n_mels + n_mfcc + 5


@njit(cache=True, error_model="numpy")
def state_size(n_fft, n_mels, n_mfcc):
    return STATE_HEADER + n_fft + 4 * (n_fft // 2) + 2 * (n_fft // 2 + 1) + 2 * n_mels + n_mfcc


@njit(cache=True, error_model="numpy")
def unpack(fplan, iplan, state):
    """Views of the packed tables and scratch, taken once per call rather than once per frame."""
    n_fft = iplan[0]
    n_mels = iplan[2]
    n_mfcc = iplan[3]
    m = n_fft // 2
    nb = m + 1
    o = STATE_HEADER + n_fft
    e = o + 4 * m + 2 * nb
    return (
        fplan[iplan[6]:iplan[6] + n_fft],  # window
        iplan[iplan[13]:iplan[13] + m],  # bitrev
        fplan[iplan[7]:iplan[8]],  # tw_re
        fplan[iplan[8]:iplan[9]],  # tw_im
        fplan[iplan[9]:iplan[9] + nb],  # post_re
        fplan[iplan[10]:iplan[10] + nb],  # post_im
        iplan[iplan[14]:iplan[14] + n_mels],  # mel starts
        iplan[iplan[15]:iplan[15] + n_mels],  # mel lengths
        iplan[iplan[16]:iplan[16] + n_mels],  # mel offsets
        fplan[iplan[12]:],  # mel weights
        fplan[iplan[11]:iplan[11] + n_mfcc * n_mels],  # dct_t, flat
        state[o:o + m], state[o + m:o + 2 * m], state[o + 2 * m:o + 3 * m], state[o + 3 * m:o + 4 * m],  # xr xi yr yi
        state[o + 4 * m:o + 4 * m + nb], state[o + 4 * m + nb:e],  # power, entropy scratch
        state[e:e + n_mels], state[e + n_mels:e + 2 * n_mels], state[e + 2 * n_mels:e + 2 * n_mels + n_mfcc],
        iplan[4], iplan[5], fplan[0],  # envelope band and scale
    )


@njit(cache=True, error_model="numpy")
def frame_all(frame, v, out, t):
    """Every feature of one n_fft frame into column t of `out` (float32 features x frames); v = unpack(...)."""
    (window, bitrev, tw_re, tw_im, post_re, post_im, starts, lengths, offsets, weights, dct_t,
     xr, xi, yr, yi, power, scratch, mel, logmel, mfcc, env_lo, env_hi, env_scale) = v
    n_mels = mel.shape[0]
    n_mfcc = mfcc.shape[0]
    power_frame(frame, window, bitrev, tw_re, tw_im, post_re, post_im, xr, xi, yr, yi, power)
    mel_frame(power, starts, lengths, offsets, weights, mel)
    for b in range(n_mels):  # float32 hand-offs, as melspectrogram -> power_to_db -> dct in float32
        logmel[b] = np.float32(db(np.float64(np.float32(mel[b])), 1e-10, 0.0))
        out[b, t] = logmel[b]
    dct_frame(logmel, dct_t, mfcc)
    for k in range(n_mfcc):
        out[n_mels + k, t] = mfcc[k]
    r = n_mels + n_mfcc
    rms, zcr, clipped = frame_stats(frame, ZC_THRESHOLD)
    out[r, t] = rms
    out[r + 1, t] = zcr
    out[r + 2, t] = entropy_frame(power, scratch)
    out[r + 3, t] = envelope_frame(power, env_lo, env_hi, env_scale)
    out[r + 4, t] = clipped


@njit(cache=True, error_model="numpy")
def stream_push(pcm, fplan, iplan, state, out):
    """Append pcm (any length) to the stream, writing the frames it completes into `out`
    (features x frames, sized by the caller from the sample count); returns how many.

    pcm is int16 (scaled by 1/32768) or float32, like the float32 batch API. Raises
    ValueError before touching the state if pcm holds NaN/inf."""
    scale = 1.0 / 32768.0 if pcm.itemsize == 2 else 1.0  # a constant in each compiled variant
    n_fft = iplan[0]
    hop = iplan[1]
    if check_finite(pcm) >= 0:
        raise ValueError("audio contains NaN or inf")
    fill = int(state[0])
    skip = int(state[1])
    buf = state[STATE_HEADER:STATE_HEADER + n_fft]
    v = unpack(fplan, iplan, state)
    t = 0
    i = min(skip, pcm.shape[0])
    skip -= i
    while i < pcm.shape[0]:
        take = min(n_fft - fill, pcm.shape[0] - i)
        for j in range(take):
            buf[fill + j] = np.float32(pcm[i + j] * scale)
        fill += take
        i += take
        if fill == n_fft:
            if t < out.shape[1]:  # (the caller's count is exact; never write past it)
                frame_all(buf, v, out, t)
            t += 1
            if hop < n_fft:
                for j in range(n_fft - hop):  # forward copy: safe for a left shift
                    buf[j] = buf[j + hop]
                fill = n_fft - hop
            else:
                fill = 0
                skip = hop - n_fft
                d = min(skip, pcm.shape[0] - i)
                i += d
                skip -= d
    state[0] = fill
    state[1] = skip
    return t


@njit(cache=True, error_model="numpy")
def frames_all(y, hop, fplan, iplan, state):
    """Every feature for every full frame of y (center=False): the batch twin of stream_push."""
    n_fft = iplan[0]
    total = n_frames(y.shape[0], n_fft, hop)
    out = np.empty((n_features(iplan[2], iplan[3]), total), np.float32)
    v = unpack(fplan, iplan, state)
    for t in range(total):
        frame_all(y[t * hop:t * hop + n_fft], v, out, t)
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
