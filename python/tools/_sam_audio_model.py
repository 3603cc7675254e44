"""SAM-Audio's text encoder (T5) and its velocity network (projection,
conditioning and diffusion transformer), written for splitsound from the
architecture as Meta's code computes it (facebookresearch/sam-audio at
68b48d4; see ../shared/reference/sam-audio-tiny/FACTS.md, steps 2 and 7-8).

Both load the checkpoint's own parameter names (`text_encoder.model.*` or the
bare T5 names; `transformer.*`, `proj.*`, `memory_proj.*`,
`align_masked_video.*`, `embed_anchors.*`) and export to ONNX with dynamic
batch, text length and frame count. The codec is in _sam_audio_codec.py.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn


def rms_norm(x, weight, eps):
    # Computed in float32 whatever the input's type, as the reference does.
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).type_as(x) * weight


# ---------------------------------------------------------------- T5 encoder

def t5_relative_bucket(rel, num_buckets, max_distance):
    """HF T5's bidirectional bucket of `rel` = key position - query position."""
    num_buckets //= 2
    bucket = (rel > 0).long() * num_buckets
    rel = rel.abs()
    max_exact = num_buckets // 2
    large = max_exact + (
        torch.log(rel.float().clamp(min=1) / max_exact) / math.log(max_distance / max_exact) * (num_buckets - max_exact)
    ).long()
    large = torch.clamp(large, max=num_buckets - 1)
    return bucket + torch.where(rel < max_exact, rel, large)


class T5Encoder(nn.Module):
    """HF T5EncoderModel's forward: embeddings without scaling, pre-norm blocks
    with RMS norms, unscaled attention with a relative position bias made in
    block 0 and shared by all blocks, relu (or gated-gelu) feed-forward, final norm."""

    def __init__(self, cfg):
        super().__init__()
        self.d_model, self.d_kv, self.heads = cfg["d_model"], cfg["d_kv"], cfg["num_heads"]
        self.eps = cfg["layer_norm_epsilon"]
        self.num_buckets = cfg["relative_attention_num_buckets"]
        self.max_distance = cfg["relative_attention_max_distance"]
        self.gated = cfg.get("is_gated_act", False) or cfg.get("feed_forward_proj", "relu").startswith("gated")
        act = cfg.get("dense_act_fn", "relu")
        if act not in ("relu", "gelu_new", "gelu"):
            raise ValueError(f"T5 activation {act!r} is not supported")
        self.act = act
        inner = self.d_kv * self.heads
        self.shared = nn.Embedding(cfg["vocab_size"], self.d_model)
        self.rel_bias = nn.Embedding(self.num_buckets, self.heads)
        self.blocks = nn.ModuleList()
        for _ in range(cfg["num_layers"]):
            b = nn.Module()
            b.ln1 = nn.Parameter(torch.ones(self.d_model))
            b.q, b.k, b.v = (nn.Linear(self.d_model, inner, bias=False) for _ in range(3))
            b.o = nn.Linear(inner, self.d_model, bias=False)
            b.ln2 = nn.Parameter(torch.ones(self.d_model))
            if self.gated:
                b.wi_0 = nn.Linear(self.d_model, cfg["d_ff"], bias=False)
                b.wi_1 = nn.Linear(self.d_model, cfg["d_ff"], bias=False)
            else:
                b.wi = nn.Linear(self.d_model, cfg["d_ff"], bias=False)
            b.wo = nn.Linear(cfg["d_ff"], self.d_model, bias=False)
            self.blocks.append(b)
        self.final_ln = nn.Parameter(torch.ones(self.d_model))

    def load(self, sd):
        """`sd`: HF T5EncoderModel names, with or without `text_encoder.model.`."""
        sd = {k.removeprefix("text_encoder.model."): v for k, v in sd.items()}
        own = {"shared.weight": self.shared.weight, "final_ln": self.final_ln,
               "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight": self.rel_bias.weight}
        for i, b in enumerate(self.blocks):
            p = f"encoder.block.{i}.layer."
            own[p + "0.layer_norm.weight"] = b.ln1
            for n in "qkvo":
                own[p + f"0.SelfAttention.{n}.weight"] = getattr(b, n).weight
            own[p + "1.layer_norm.weight"] = b.ln2
            own[p + "1.DenseReluDense.wo.weight"] = b.wo.weight
            for n in (("wi_0", "wi_1") if self.gated else ("wi",)):
                own[p + f"1.DenseReluDense.{n}.weight"] = getattr(b, n).weight
        own["encoder.final_layer_norm.weight"] = own.pop("final_ln")
        _copy_into(own, sd, skip=("encoder.embed_tokens.weight", "lm_head.weight"))

    def forward(self, input_ids, attention_mask):
        B, L = input_ids.shape
        x = self.shared(input_ids)
        pos = torch.arange(L, device=x.device)
        bucket = t5_relative_bucket(pos[None, :] - pos[:, None], self.num_buckets, self.max_distance)
        bias = self.rel_bias(bucket).permute(2, 0, 1)[None]  # (1, heads, q, k)
        # Padded keys get the most negative float, as HF's extended mask does.
        bias = bias + (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        for b in self.blocks:
            h = rms_norm(x, b.ln1, self.eps)
            q, k, v = (m(h).view(B, L, self.heads, self.d_kv).transpose(1, 2) for m in (b.q, b.k, b.v))
            att = torch.softmax((q @ k.transpose(-1, -2) + bias).float(), dim=-1).type_as(q)
            x = x + b.o((att @ v).transpose(1, 2).reshape(B, L, -1))
            h = rms_norm(x, b.ln2, self.eps)
            if self.gated:
                h = F.gelu(b.wi_0(h), approximate="tanh") * b.wi_1(h)
            else:
                h = F.relu(b.wi(h)) if self.act == "relu" else F.gelu(b.wi(h), approximate="tanh" if self.act == "gelu_new" else "none")
            x = x + b.wo(h)
        return rms_norm(x, self.final_ln, self.eps)


# ---------------------------------------------------------- the velocity net

def sinusoid(t, dim, max_period=10000.0):
    """cat(cos(t·f), sin(t·f)), f_i = exp(-ln(max_period)·i/(dim/2)); t raw."""
    half = dim // 2
    dtype = t.dtype if t.is_floating_point() else torch.float32
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=dtype, device=t.device) / half)
    args = t[..., None].to(dtype) * freqs
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class SwiGLU(nn.Module):
    def __init__(self, dim_in, hidden, dim_out):
        super().__init__()
        self.w1 = nn.Linear(dim_in, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim_out, bias=False)
        self.w3 = nn.Linear(dim_in, hidden, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return rms_norm(x, self.weight, self.eps)


class Attention(nn.Module):
    """Bias-free projections; heads split *strided* (head index fastest) and
    merged contiguously; RMS QK-norm over the head dims; interleaved RoPE on
    self-attention only; the default 1/sqrt(head_dim) scale; boolean key mask."""

    def __init__(self, dim, heads, eps, qk_norm):
        super().__init__()
        self.heads, self.hd = heads, dim // heads
        self.wq, self.wk, self.wv, self.wo = (nn.Linear(dim, dim, bias=False) for _ in range(4))
        self.q_norm = RMSNorm(self.hd, eps) if qk_norm else None
        self.k_norm = RMSNorm(self.hd, eps) if qk_norm else None

    def split(self, x):
        B, T, _ = x.shape
        return x.view(B, T, self.hd, self.heads).permute(0, 3, 1, 2)  # (B, heads, T, hd)

    def forward(self, x, ctx, key_mask, rope=None):
        q, k, v = self.split(self.wq(x)), self.split(self.wk(ctx)), self.split(self.wv(ctx))
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(self.hd)
        s = s.masked_fill(~key_mask[:, None, None, :], float("-inf"))
        o = torch.softmax(s, dim=-1) @ v
        B, H, T, D = o.shape
        return self.wo(o.transpose(1, 2).reshape(B, T, H * D))


def rope_tables(T, hd, theta, device):
    inv = theta ** (-torch.arange(0, hd, 2, dtype=torch.float32, device=device) / hd)
    ang = torch.arange(T, dtype=torch.float32, device=device)[:, None] * inv  # (T, hd/2)
    return torch.cos(ang), torch.sin(ang)


def apply_rope(x, cos, sin):
    # Pairs (2i, 2i+1) rotate together.
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1).flatten(-2)


class Block(nn.Module):
    def __init__(self, dim, heads, eps, qk_norm, ffn_hidden):
        super().__init__()
        self.attention_norm = RMSNorm(dim, eps)
        self.attention = Attention(dim, heads, eps, qk_norm)
        self.cross_attention = Attention(dim, heads, eps, qk_norm)
        self.ffn_norm = RMSNorm(dim, eps)
        self.feed_forward = SwiGLU(dim, ffn_hidden, dim)
        self.scale_shift_table = nn.Parameter(torch.zeros(6, dim))

    def forward(self, x, t0, y, pad_mask, text_mask, rope):
        B = x.shape[0]
        mod = self.scale_shift_table[None] + t0.view(B, 6, -1)
        sh_a, sc_a, g_a, sh_m, sc_m, g_m = (m[:, None, :] for m in mod.unbind(1))
        h = self.attention_norm(x) * (1 + sc_a) + sh_a
        x = x + g_a * self.attention(h, h, pad_mask, rope)
        x = x + self.cross_attention(x, y, text_mask)
        h = self.ffn_norm(x) * (1 + sc_m) + sh_m
        return x + g_m * self.feed_forward(h)


class ConvBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.groupnorm = nn.GroupNorm(1, dim, eps=1e-5)
        self.project = nn.Conv1d(dim, dim, 3, padding=1)

    def forward(self, x):
        return self.project(F.silu(self.groupnorm(x)))


def ffn_hidden(dim, exp, multiplier, multiple_of):
    h = int(2 * exp * dim / 3)
    h = int(multiplier * h)
    return multiple_of * ((h + multiple_of - 1) // multiple_of)


class SamAudioVelocity(nn.Module):
    """SAMAudio.forward for a text prompt and no video: the ODE's velocity
    f(t, y) from the noisy latent y (B,T,2C), t (B,), the mixture's features
    (B,T,2C), the T5 features (B,L,D) with their mask, the audio padding mask
    (B,T) and each frame's anchor id (B,T) (0 `<null>` on valid frames, the
    `<pad>` id on padded ones when no span is given)."""

    def __init__(self, cfg):
        super().__init__()
        tc = cfg["transformer"]
        dim, heads, eps = tc["dim"], tc["n_heads"], tc["norm_eps"]
        if tc.get("non_linearity", "swiglu") != "swiglu" or tc.get("timestep_non_linearity", "swiglu") != "swiglu" \
                or tc.get("context_non_linearity", "swiglu") != "swiglu" or tc.get("t_block_non_linearity", "silu") != "silu":
            raise ValueError("only the swiglu/silu transformer of SAM-Audio is supported")
        if tc.get("context_norm"):
            raise ValueError("context_norm is not supported")
        if not tc.get("use_rope", True):
            raise ValueError("a transformer without RoPE is not supported")
        self.dim, self.heads = dim, heads
        self.freq_dim = tc["frequency_embedding_dim"]
        self.rope_theta = max(10000.0, 2.0 * tc["max_positions"])
        out = tc["out_channels"]
        vision_dim = cfg["vision_encoder"]["dim"]
        text_dim = cfg["text_encoder"]["dim"]
        ctx_dim = tc.get("context_dim") or dim
        self.proj = nn.Linear(cfg["in_channels"], dim)
        self.align_masked_video = nn.Module()
        self.align_masked_video.conv = nn.Conv1d(vision_dim, dim, 1)
        self.align_masked_video.layer_norm = nn.LayerNorm(dim, eps=1e-5)
        self.align_masked_video.gate = nn.Parameter(torch.zeros(1))
        self.embed_anchors = nn.Module()
        self.embed_anchors.embed = nn.Embedding(cfg["num_anchors"] + 1, cfg["anchor_embedding_dim"])
        self.embed_anchors.proj = nn.Linear(cfg["anchor_embedding_dim"], dim, bias=False)
        self.embed_anchors.gate = nn.Parameter(torch.zeros(1))
        self.memory_proj = nn.Linear(text_dim, ctx_dim)
        t = nn.Module()
        t.x_embedder = nn.Module()
        t.x_embedder.block = nn.Module()
        t.x_embedder.block.block1 = ConvBlock(dim)
        t.x_embedder.block.block2 = ConvBlock(dim)
        t.t_embedder = nn.Module()
        t.t_embedder.projection = SwiGLU(self.freq_dim, dim, dim)
        t.t_block = nn.Linear(dim, 6 * dim, bias=tc.get("t_block_bias", True))
        t.y_embedder = nn.Module()
        t.y_embedder.projection = SwiGLU(ctx_dim, dim, dim)
        hidden = ffn_hidden(dim, tc["ffn_exp"], tc["ffn_dim_multiplier"], tc["multiple_of"])
        t.layers = nn.ModuleList(Block(dim, heads, eps, tc["qk_norm"], hidden) for _ in range(tc["n_layers"]))
        t.norm = RMSNorm(dim, eps)
        t.final_layer_scale_shift_table = nn.Parameter(torch.zeros(2, dim))
        t.output = nn.Linear(dim, out, bias=tc.get("fc_bias", False))
        self.transformer = t
        self.out_channels = out

    def load(self, sd):
        own = dict(self.named_parameters())
        _copy_into(own, {k: v for k, v in sd.items() if k.split(".")[0] in
                         ("transformer", "proj", "memory_proj", "align_masked_video", "embed_anchors")})

    def forward(self, noisy, t, audio_features, text_features, text_mask, pad_mask, anchor_ids):
        t_ = self.transformer
        B, T, _ = noisy.shape
        pad_mask, text_mask = pad_mask.bool(), text_mask.bool()
        x = self.proj(torch.cat([noisy, torch.zeros_like(noisy), audio_features], dim=-1))
        # No video: the aligner sees zeros, so its conv gives its bias on every frame.
        av = self.align_masked_video
        video = av.conv.bias.expand(B, T, -1)
        x = x + torch.tanh(av.gate) * av.layer_norm(video)
        ea = self.embed_anchors
        x = x + torch.tanh(ea.gate) * ea.proj(ea.embed(anchor_ids))
        memory = self.memory_proj(text_features) + sinusoid(t, self.memory_proj.out_features)[:, None, :]
        # The transformer.
        h = x.transpose(1, 2)
        e = t_.x_embedder.block
        h = (h + e.block2(e.block1(h))).transpose(1, 2)
        temb = t_.t_embedder.projection(sinusoid(t, self.freq_dim))
        t0 = t_.t_block(F.silu(temb))
        y = t_.y_embedder.projection(memory)
        rope = rope_tables(T, self.dim // self.heads, self.rope_theta, h.device)
        for layer in t_.layers:
            h = layer(h, t0, y, pad_mask, text_mask, rope)
        shift, scale = (t_.final_layer_scale_shift_table[None] + temb[:, None, :]).unbind(1)
        h = t_.norm(h) * (1 + scale[:, None, :]) + shift[:, None, :]
        return t_.output(h)


def _copy_into(own, sd, skip=()):
    """Strict copy of `sd` into the parameters `own` (name -> Parameter)."""
    sd = {k: v for k, v in sd.items() if k not in skip}
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    if missing or unexpected:
        raise ValueError(f"checkpoint does not match the config: missing {missing[:8]}, unexpected {unexpected[:8]}")
    with torch.no_grad():
        for k, p in own.items():
            v = torch.as_tensor(sd[k])
            if tuple(v.shape) != tuple(p.shape):
                raise ValueError(f"{k}: checkpoint shape {tuple(v.shape)}, config expects {tuple(p.shape)}")
            p.copy_(v)
