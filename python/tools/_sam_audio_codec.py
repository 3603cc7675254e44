"""DAC-VAE, the audio codec of Meta's SAM-Audio, written from scratch in PyTorch.

Semantics follow facebookresearch/dacvae (dacvae/model/dacvae.py, dacvae/nn/layers.py,
dacvae/nn/bottleneck.py) and sam_audio/model/codec.py; the module tree mirrors the
checkpoint's key names (`audio_codec.encoder.block.N...`, `...decoder.model.N.block.M...`)
so that a state dict loads strictly. Weight norm is folded into plain weights at load
time, so the ONNX graphs hold ordinary Conv / ConvTranspose nodes.

* `encode_mean(wav)`: (B, 1, N) -> (B, C, N / hop). N must already be a multiple of the
  hop (1920): SAM-Audio reflect-pads on the right before the codec; that stays outside.
  Only the mean half of the VAE bottleneck is returned (SAM-Audio samples nothing).
* `decode(latent, message)`: (B, C, T), (B, nbits) 0/1 bits -> (B, 1, T * hop), the
  watermark included. The message is an explicit input: dacvae draws it from the global
  torch RNG when none is given (`Watermarker.random_message`), which SAM-Audio does.

Padding, and why:
* "none" convs (all weight-normed ones): symmetric zero padding (k - s) * d // 2, which
  keeps the length at stride 1 and gives L / s at stride s with kernel 2s.
* "none" transposed convs (main decoder upsamplers, kernel 2s): padding ceil(s / 2) and
  output_padding s % 2, giving exactly L * s.
* "auto" causal convs (watermark branch): (k - s) zeros on the left; on the right dacvae
  pads just enough to complete the last frame, ((-L) mod s). Padding s - 1 instead gives
  the same ceil(L / s) frames with the same values (the extra zeros never start a frame),
  and keeps the graph free of length arithmetic.
* "auto" causal transposed convs: no padding, then k - s samples dropped on the right.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

ALPHA_BLEND = 0.25  # dacvae Decoder: wm_channels / d_wm_out = 32 / 128, its own defaults.


class Snake(nn.Module):
    """x + sin^2(alpha x) / (alpha + 1e-9), alpha per channel (dacvae layers.snake)."""

    def __init__(self, channels):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, channels, 1))

    def forward(self, x):
        return x + (self.alpha + 1e-9).reciprocal() * torch.sin(self.alpha * x).pow(2)


def conv(cin, cout, k, stride=1, dilation=1):
    """A "none"-mode NormConv1d: zero padding (k - stride) * dilation // 2 on each side."""
    return nn.Conv1d(cin, cout, k, stride=stride, dilation=dilation, padding=(k - stride) * dilation // 2)


def conv_t(cin, cout, stride):
    """A "none"-mode NormConvTranspose1d with kernel 2s: output exactly L * s."""
    return nn.ConvTranspose1d(cin, cout, 2 * stride, stride=stride,
                              padding=(stride + 1) // 2, output_padding=stride % 2)


class CausalConv1d(nn.Conv1d):
    """An "auto"-mode causal NormConv1d (dilation 1 everywhere it is used)."""

    def __init__(self, cin, cout, k, stride=1):
        super().__init__(cin, cout, k, stride=stride)

    def forward(self, x):
        s = self.stride[0]
        # Left: k - s. Right: s - 1, equivalent to dacvae's (-L) mod s (see the module doc).
        return super().forward(F.pad(x, (self.kernel_size[0] - s, s - 1)))


class CausalConvTranspose1d(nn.ConvTranspose1d):
    """An "auto"-mode causal NormConvTranspose1d: full output minus k - s samples on the right."""

    def __init__(self, cin, cout, stride):
        super().__init__(cin, cout, 2 * stride, stride=stride)

    def forward(self, x):
        trim = self.kernel_size[0] - self.stride[0]
        return super().forward(x)[..., :-trim]


class SnakeUnit(nn.Module):
    """ResidualUnit(act=Snake): Snake, conv k7 dilated, Snake, conv k1, plus x.
    Lengths are preserved, so dacvae's shortcut crop is a no-op."""

    def __init__(self, dim, dilation):
        super().__init__()
        self.block = nn.Sequential(Snake(dim), conv(dim, dim, 7, dilation=dilation), Snake(dim), conv(dim, dim, 1))

    def forward(self, x):
        return x + self.block(x)


class EluUnit(nn.Module):
    """ResidualUnit(act=ELU, kernel 3, compress 2, causal, true_skip) of the watermark branch."""

    def __init__(self, dim):
        super().__init__()
        self.block = nn.Sequential(nn.ELU(), CausalConv1d(dim, dim // 2, 3), nn.ELU(), CausalConv1d(dim // 2, dim, 1))

    def forward(self, x):
        return x + self.block(x)


class LSTMSkip(nn.Module):
    """dacvae LSTMBlock: time-major LSTM over (B, C, T), output plus input."""

    def __init__(self, hidden, layers):
        super().__init__()
        self.lstm = nn.LSTM(hidden, hidden, layers)

    def forward(self, x):
        x = x.permute(2, 0, 1)
        y, _ = self.lstm(x)
        return (y + x).permute(1, 2, 0)


def _numbered(**mods):
    """A ModuleDict keyed by the checkpoint's positional indices ('n3' -> '3')."""
    return nn.ModuleDict({k[1:]: v for k, v in mods.items()})


class EncoderBlock(nn.Module):
    def __init__(self, dim, stride):
        super().__init__()
        h = dim // 2
        self.block = nn.Sequential(SnakeUnit(h, 1), SnakeUnit(h, 3), SnakeUnit(h, 9), Snake(h),
                                   conv(h, dim, 2 * stride, stride=stride))

    def forward(self, x):
        return self.block(x)


class Encoder(nn.Module):
    def __init__(self, d_model, strides, d_latent):
        super().__init__()
        layers = [conv(1, d_model, 7)]
        for s in strides:
            d_model *= 2
            layers.append(EncoderBlock(d_model, s))
        layers += [Snake(d_model), conv(d_model, d_latent, 3)]
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        return self.block(x)


class DecoderBlock(nn.Module):
    """dacvae DecoderBlock. Its ModuleList interleaves two paths (dacvae.py, DecoderBlock
    `forward` / `upsample_group` / `downsample_group`, chunks of 2 layers):
      main:  0 Snake, 1 ConvT (xs), 4/5/8 Snake units d=1/3/9 (9 is Identity);
      watermark "downsample_group" (used on the way *up*): 2 ELU, 3 causal ConvT, 6 ELU unit;
      watermark "upsample_group" (used on the way *down*): 7 ELU unit, 10 ELU, 11 causal conv.
    The watermark layers work on dim // 3 channels."""

    def __init__(self, cin, cout, stride, wm_stride):
        super().__init__()
        self.block = _numbered(
            n0=Snake(cin), n1=conv_t(cin, cout, stride),
            n3=CausalConvTranspose1d(cin // 3, cout // 3, wm_stride),
            n4=SnakeUnit(cout, 1), n5=SnakeUnit(cout, 3),
            n6=EluUnit(cout // 3), n7=EluUnit(cout // 3),
            n8=SnakeUnit(cout, 9),
            n11=CausalConv1d(cout // 3, cin // 3, 2 * wm_stride, stride=wm_stride),
        )

    def forward(self, x):
        b = self.block
        return b["8"](b["5"](b["4"](b["1"](b["0"](x)))))

    def wm_down(self, h):  # time / wm_stride, channels cout//3 -> cin//3
        return self.block["11"](F.elu(self.block["7"](h)))

    def wm_up(self, h):  # time * wm_stride, channels cin//3 -> cout//3
        return self.block["6"](self.block["3"](F.elu(h)))


class WatermarkEncoderBlock(nn.Module):
    def __init__(self, dim, d_latent, channels, hidden, lstm_layers):
        super().__init__()
        # pre: 0 Snake, 1 conv k7 dim->1 (weight norm, "none"), 2 Tanh, 3 causal conv k7 1->channels
        self.pre = _numbered(n0=Snake(dim), n1=conv(dim, 1, 7), n3=CausalConv1d(1, channels, 7))
        # post: 0 LSTM with skip, 1 ELU, 2 causal conv k7 hidden->d_latent
        self.post = _numbered(n0=LSTMSkip(hidden, lstm_layers), n2=CausalConv1d(hidden, d_latent, 7))


class WatermarkDecoderBlock(nn.Module):
    def __init__(self, d_latent, d_out, channels, hidden, lstm_layers):
        super().__init__()
        # pre: 0 causal conv k7 d_latent->hidden, 1 LSTM with skip; post: 0 ELU, 1 causal conv k7
        self.pre = _numbered(n0=CausalConv1d(d_latent, hidden, 7), n1=LSTMSkip(hidden, lstm_layers))
        self.post = _numbered(n1=CausalConv1d(channels, d_out, 7))


class MsgProcessor(nn.Module):
    def __init__(self, nbits, d_latent):
        super().__init__()
        self.nbits = nbits
        self.msg_processor = nn.Embedding(2 * nbits, d_latent)

    def forward(self, h, msg):
        # Row 2k + bit_k for every bit k, summed, broadcast over time (dacvae MsgProcessor,
        # which truncates the float bits with .long()).
        idx = 2 * torch.arange(self.nbits, device=msg.device) + msg.to(torch.int64)
        return h + self.msg_processor(idx).sum(dim=-2).unsqueeze(-1)


class Watermarker(nn.Module):
    def __init__(self, dim, d_latent, channels, hidden, nbits, lstm_layers, d_out=1):
        super().__init__()
        self.encoder_block = WatermarkEncoderBlock(dim, d_latent, channels, hidden, lstm_layers)
        self.msg_processor = MsgProcessor(nbits, d_latent)
        self.decoder_block = WatermarkDecoderBlock(d_latent, d_out, channels, hidden, lstm_layers)


class Decoder(nn.Module):
    def __init__(self, latent_dim, channels, rates, wm_rates, wm, alpha=ALPHA_BLEND):
        super().__init__()
        layers = [conv(latent_dim, channels, 7)]
        for i, (s, ws) in enumerate(zip(rates, wm_rates)):
            layers.append(DecoderBlock(channels // 2 ** i, channels // 2 ** (i + 1), s, ws))
        self.model = nn.ModuleList(layers)
        self.wm_model = Watermarker(channels // 2 ** len(rates), **wm)
        self.alpha = alpha

    def main(self, x):
        for layer in self.model:
            x = layer(x)
        return x

    def watermark(self, x, msg):
        """dacvae Decoder.watermark with blending "linear": the output layer
        tanh(conv(Snake(x))) plus alpha times the watermark residual h."""
        wm, blocks = self.wm_model, list(self.model)[1:]
        enc, dec = wm.encoder_block, wm.decoder_block
        out = torch.tanh(enc.pre["1"](enc.pre["0"](x)))  # encoder_block.forward_no_conv
        h = enc.pre["3"](out)
        for blk in reversed(blocks):  # last block first, time / prod(wm_rates)
            h = blk.wm_down(h)
        h = enc.post["2"](F.elu(enc.post["0"](h)))
        h = wm.msg_processor(h, msg)
        h = dec.pre["1"](dec.pre["0"](h))
        for blk in blocks:  # first block first, back to the sample rate
            h = blk.wm_up(h)
        h = dec.post["1"](F.elu(h))
        return out + self.alpha * h

    def forward(self, x, msg):
        return self.watermark(self.main(x), msg)


class Bottleneck(nn.Module):
    def __init__(self, latent_dim, codebook_dim):
        super().__init__()
        self.codebook_dim = codebook_dim
        self.in_proj = nn.Conv1d(latent_dim, 2 * codebook_dim, 1)
        self.out_proj = nn.Conv1d(codebook_dim, latent_dim, 1)


class DacVae(nn.Module):
    def __init__(self, encoder_dim, encoder_rates, latent_dim, decoder_dim, decoder_rates,
                 codebook_dim, wm, wm_rates=(8, 5, 4, 2), alpha=ALPHA_BLEND):
        super().__init__()
        self.hop = math.prod(encoder_rates)
        self.encoder = Encoder(encoder_dim, encoder_rates, latent_dim)
        self.quantizer = Bottleneck(latent_dim, codebook_dim)
        self.decoder = Decoder(latent_dim, decoder_dim, decoder_rates, wm_rates, wm, alpha)

    def encode_mean(self, wav):
        """(B, 1, N), N a multiple of the hop -> (B, C, N / hop): the VAE mean."""
        z = self.quantizer.in_proj(self.encoder(wav))
        return z[:, : self.quantizer.codebook_dim]

    def decode(self, latent, message):
        """(B, C, T) latent, (B, nbits) 0/1 message (int or float) -> (B, 1, T * hop)."""
        return self.decoder(self.quantizer.out_proj(latent), message)


# ---------------------------------------------------------------- loading

PREFIX = "audio_codec."


def fold_weight_norm(sd):
    """Replace every weight_g/weight_v pair by weight = g * v / ||v||, the norm over all
    dims but 0 (torch weight_norm's default dim=0; for ConvTranspose1d that is the
    input-channel axis). torch._weight_norm is the very function the hook calls."""
    out = {}
    for k, v in sd.items():
        if k.endswith(".weight_v"):
            continue
        if k.endswith(".weight_g"):
            base = k[: -len("_g")]
            out[base] = torch._weight_norm(sd[base + "_v"], v, 0)
        else:
            out[k] = v
    return out


def load_codec(state, config, alpha=ALPHA_BLEND):
    """Build a DacVae from `state` (a safetensors path or a state dict, keys with or
    without the `audio_codec.` prefix) and the `audio_codec` config section (the
    SAMAudioConfig kwargs: encoder_dim, encoder_rates, latent_dim, decoder_dim,
    decoder_rates, codebook_dim). The watermarker's sizes and rates come from the
    weights: the released model has hidden 512, channels 32; the tiny reference 32, 2.
    `alpha` (0.25) is not recorded in the checkpoint; dacvae derives it from Decoder
    defaults that nothing overrides."""
    if isinstance(state, (str, bytes)) or hasattr(state, "__fspath__"):
        from safetensors.torch import load_file

        state = load_file(state)
    sd = {(k[len(PREFIX):] if k.startswith(PREFIX) else k): torch.as_tensor(v).float() for k, v in state.items()}
    sd = fold_weight_norm(sd)

    wmk = "decoder.wm_model."
    emb = sd[wmk + "msg_processor.msg_processor.weight"]
    n_rates = len(config["decoder_rates"])
    wm = dict(
        hidden=sd[wmk + "encoder_block.post.0.lstm.weight_hh_l0"].shape[1],
        lstm_layers=sum(1 for k in sd if k.startswith(wmk + "encoder_block.post.0.lstm.weight_hh_l")),
        channels=sd[wmk + "decoder_block.post.1.weight"].shape[1],
        d_latent=emb.shape[1],
        nbits=emb.shape[0] // 2,
    )
    # Causal transposed conv kernel = 2 * wm stride.
    wm_rates = [sd[f"decoder.model.{i + 1}.block.3.weight"].shape[-1] // 2 for i in range(n_rates)]
    model = DacVae(config["encoder_dim"], config["encoder_rates"], config["latent_dim"], config["decoder_dim"],
                   config["decoder_rates"], config["codebook_dim"], wm, wm_rates, alpha)
    model.load_state_dict(sd, strict=True)
    return model.eval()
