"""HT-Demucs with its STFT and inverse STFT inside the ONNX graph (family `waveform`).

`torch.stft` on complex tensors does not export, and ONNX has no inverse STFT,
so the transforms become a strided `Conv1d` (analysis) and a `ConvTranspose1d`
(synthesis) with one DFT basis, as demucs-onnx does. The basis is computed in
the graph from index arithmetic, not stored: k·n mod n_fft is exact in int64,
the phase, cos, sin and the periodic Hann window are float64, and only the
result is cast to float32 (a stored basis for n_fft 4096 would be 64 MB).

The replaced methods compute what `HTDemucs._spec`, `_magnitude`, `_mask` and
`_ispec` compute (`demucs.spec.spectro`/`ispectro`: centred, reflect-padded,
normalised, periodic Hann, hop n_fft/4), for fixed-length segments.
"""
import math
import types
from fractions import Fraction

import torch
import torch.nn.functional as F


def dft_basis(nfft, like):
    """[nfft, 1, nfft]: cos·w for bins 0..nfft/2−1, then −sin·w, over √nfft
    (torch.stft's normalised frames without the Nyquist bin, as `_spec` keeps).
    `like` is any tensor of the graph: the indices are tied to it (by adding
    zero) so that the exporter records the arithmetic, not its 64 MB result."""
    zero = like.reshape(-1)[:1].detach().to(torch.int64) * 0
    n = torch.arange(nfft, dtype=torch.int64) + zero
    k = torch.arange(nfft // 2, dtype=torch.int64)[:, None]
    phase = torch.remainder(k * n, nfft).to(torch.float64) * (2 * math.pi / nfft)
    window = 0.5 - 0.5 * torch.cos(n.to(torch.float64) * (2 * math.pi / nfft))
    basis = torch.cat([torch.cos(phase) * window, -torch.sin(phase) * window]) / math.sqrt(nfft)
    return basis.to(torch.float32).reshape(nfft, 1, nfft)


def patch(model):
    """Replaces the model's spectral front and back ends in place; returns it."""
    nfft, hl = model.nfft, model.hop_length
    if hl != nfft // 4:
        raise SystemExit(f"HT-Demucs with hop {hl} and n_fft {nfft}: the in-graph inverse needs hop = n_fft/4")
    if isinstance(model.segment, Fraction):
        # int(7.8 · 44100) is 343980 either way; a float keeps the tracer's sizes plain ints.
        model.segment = float(model.segment)
    pad = hl // 2 * 3
    bins = nfft // 2

    def _spec(self, x):
        b, c, length = x.shape
        length = int(length)  # a fixed-length graph: a constant, not a traced size
        frames = (length + hl - 1) // hl
        xp = F.pad(x.reshape(b * c, 1, length), (pad, pad + frames * hl - length), mode="reflect")
        # torch.stft's frames 2 .. 2 + frames of the padded signal, which `_spec` keeps.
        return F.conv1d(xp, dft_basis(nfft, x), stride=hl).view(b, c, 2, bins, frames)

    def _magnitude(self, z):
        b, c, two, f, t = z.shape
        return z.reshape(b, c * 2, f, t)

    def _mask(self, z, m):
        b, s, c2, f, t = m.shape
        return m.view(b, s, c2 // 2, 2, f, t)

    def _ispec(self, z, length=None, scale=0):
        b, s, c, two, f, t = z.shape
        # A real signal's spectrum: the bins above DC count twice (their mirror
        # images); the Nyquist bin is zero, as `_ispec`'s padding makes it.
        twice = torch.cat([torch.ones(1), torch.full((bins - 1,), 2.0)])
        gain = torch.cat([twice, twice])[:, None]
        y = F.conv_transpose1d(z.reshape(-1, 2 * bins, t) * gain, dft_basis(nfft, z), stride=hl)
        # The squared periodic Hann window overlaps to exactly 3/2 at hop n_fft/4.
        return (y[:, 0, pad:pad + length] * (2.0 / 3.0)).view(b, s, c, length)

    for f in (_spec, _magnitude, _mask, _ispec):
        setattr(model, f.__name__, types.MethodType(f, model))
    return model
