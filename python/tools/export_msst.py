#!/usr/bin/env python3
"""Export a model of ZFTurbo's Music-Source-Separation-Training (PyPI `msst`)
to a splitsound model package (families `bs-roformer`, `mel-band-roformer`, `mdx23c`, `scnet`).

The graph is the network between the STFT and the inverse STFT, as msst's own
modules compute it (the code of their `forward`, cut after the STFT and before
the inverse):
- RoFormers: input `x` [batch, frames, rows · 2], the bands' (bin, channel) rows
  of the mixture's STFT with real and imaginary parts; output `mask`
  [batch, stems, frames, rows · 2];
- MDX23C: input `spec` [batch, 2 · channels, dim_f, frames], output `spec_out`
  [batch, stems, 2 · channels, dim_f, frames];
- SCNet: the same with every bin (`n_fft/2 + 1`) and the frames of a chunk
  zero-padded to an odd number of hops, as its forward pads it. Its separation
  network's `torch.fft.rfft`/`irfft` over the frames (norm "ortho") export as
  products with the DFT matrices of that fixed frame count.
splitsound computes the STFT, the band gathering, the mel bands' averaging, the
complex masks, `zero_dc`, the inverse STFT and `demix`'s chunking as msst does.
Mean and variance reductions in the graph accumulate in float64 (see
_onnx_precision.py).

    python3 python/tools/export_msst.py --config model_bs_roformer.yaml \\
        --checkpoint model_bs_roformer.ckpt --out bs-roformer
    python3 python/tools/export_msst.py --model-type mel_band_roformer --config mel.yaml --seed 0 --out /tmp/mel

TYPE is the config's `training.model_type` when it has one (it wins, as in msst). Stems are the config's
`training.instruments`; with `training.target_instrument` the package has the
target and, as the second stem, the other instrument: the mixture minus the target.
Needs torch, onnx and `pip install --no-deps msst` (with einops,
rotary-embedding-torch, beartype, librosa, pyyaml and ml_collections).
"""
import argparse
import inspect
import json
import os
import sys
import textwrap

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _manifest import embed  # noqa: E402
from _onnx_attention import chunked_attention  # noqa: E402
from _onnx_precision import accumulate_in_double  # noqa: E402

FAMILIES = {"bs_roformer": "bs-roformer", "mel_band_roformer": "mel-band-roformer", "mdx23c": "mdx23c",
            "scnet": "scnet"}


class ExportError(Exception):
    pass


def load_config(path):
    import yaml
    from ml_collections import ConfigDict

    # msst.utils.settings.load_config: FullLoader (configs hold !!python/tuple).
    with open(path) as f:
        return ConfigDict(yaml.load(f, Loader=yaml.FullLoader))


def model_class(model_type):
    if model_type == "mdx23c":
        from msst.models.mdx23c_tfc_tdf_v3 import TFC_TDF_net

        return TFC_TDF_net
    if model_type == "scnet":
        from msst.models.scnet import SCNet

        return SCNet
    from msst.models.bs_roformer import BSRoformer, MelBandRoformer

    return {"bs_roformer": BSRoformer, "mel_band_roformer": MelBandRoformer}[model_type]


MDX23C_MODEL_KEYS = {"num_subbands", "num_scales", "scale", "num_blocks_per_scale", "num_channels", "growth",
                     "bottleneck_factor", "norm", "act"}


def build(model_type, config):
    """The module as `msst.utils.settings.get_model_from_config` builds it, with
    a config key the class does not take named in the error."""
    cls = model_class(model_type)
    if model_type == "mdx23c":
        unknown = sorted(k for k in config.model if k not in MDX23C_MODEL_KEYS)
        if unknown:
            raise ExportError(f"config `model:` keys that TFC_TDF_net does not read: {', '.join(unknown)}")
        missing = sorted(k for k in MDX23C_MODEL_KEYS - {"norm", "act"} if k not in config.model)
        if missing:
            raise ExportError(f"config `model:` lacks {', '.join(missing)}")
        for k in ("n_fft", "hop_length", "dim_f", "num_channels", "chunk_size"):
            if k not in config.audio:
                raise ExportError(f"config `audio:` lacks {k}")
        return cls(config)
    params = inspect.signature(cls.__init__).parameters
    kwargs = dict(config.model)
    unknown = sorted(k for k in kwargs if k not in params)
    if unknown:
        raise ExportError(f"config `model:` keys that {cls.__name__} does not take: {', '.join(unknown)}")
    if kwargs.get("use_pope"):
        raise ExportError("use_pope: PoPE attention does not export to ONNX")
    return cls(**kwargs)


def load_checkpoint(model, path):
    """The weights, as msst loads them; a checkpoint that does not fit the config
    is an error naming its tensors."""
    sd = torch.load(path, map_location="cpu", weights_only=False)
    for key in ("state", "state_dict", "model_state_dict"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    wrong = [f"{k} {tuple(sd[k].shape)} (the config makes {tuple(own[k].shape)})"
             for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    problems = []
    if missing:
        problems.append("missing: " + ", ".join(missing[:8]) + (" …" if len(missing) > 8 else ""))
    if unexpected:
        problems.append("not in the model: " + ", ".join(unexpected[:8]) + (" …" if len(unexpected) > 8 else ""))
    if wrong:
        problems.append("shapes: " + "; ".join(wrong[:8]) + (" …" if len(wrong) > 8 else ""))
    if problems:
        raise ExportError(f"{path} does not fit the config: " + " | ".join(problems))
    model.load_state_dict(sd, strict=True)


def network_fn(cls):
    """msst's own forward(), cut to the network: RoFormers from the band
    split's input `x` to the stacked masks (before the complex multiply);
    MDX23C from after `self.stft(x)` to before `self.stft.inverse(x)`. Asserts
    the markers, so a changed msst fails here instead of exporting something else."""
    src = textwrap.dedent(inspect.getsource(cls.forward))
    lines = src.splitlines()
    changed = ExportError(f"{cls.__name__}.forward changed; revisit export_msst.py")
    if cls.__name__ == "TFC_TDF_net":
        starts = [i for i, l in enumerate(lines) if l.strip() == "x = self.stft(x)"]
        ends = [i for i, l in enumerate(lines) if l.strip() == "x = self.stft.inverse(x)"]
        if len(starts) != 1 or len(ends) != 1:
            raise changed
        start, end, var = starts[0] + 1, ends[0] - 1, "x"
    elif cls.__name__ == "SCNet":
        # From the STFT's channels [B, 2C, F, T] to the decoder's [B, 2C · stems, F, T].
        starts = [i for i, l in enumerate(lines) if l.strip() == "B, C, Fr, T = x.shape"]
        ends = [i for i, l in enumerate(lines) if l.strip() == "n = self.dims[0]"]
        if len(starts) != 1 or len(ends) != 1 or "output_channel_indices" not in src:
            raise changed
        indent = lines[starts[0]][:len(lines[starts[0]]) - len(lines[starts[0]].lstrip())]
        lines = lines[:starts[0]] + [indent + "output_channel_indices = None"] + lines[starts[0]:]
        start, end, var = starts[0], ends[0], "x"
    else:
        start = next((i for i, l in enumerate(lines) if "x = self.band_split(x)" in l or "checkpoint(self.band_split" in l),
                     None)
        if start is None:
            raise changed
        # Include the `if self.use_torch_checkpoint:` line that opens the band split.
        if "use_torch_checkpoint" in lines[start - 1]:
            start -= 1
        stack = [i for i, l in enumerate(lines) if "torch.stack([fn(x) for fn in heads], dim=1)" in l]
        if not stack:
            raise changed
        end = stack[-1]
        var = lines[end].strip().split("=")[0].strip()
    body = textwrap.indent(textwrap.dedent("\n".join(lines[start:end + 1])), "    ")
    fn_src = f"def network(self, x, active_stem_ids=None):\n{body}\n    return {var}\n"
    ns = {}
    exec(compile(fn_src, f"{cls.__name__}.forward (network part)", "exec"), vars(sys.modules[cls.__module__]), ns)
    return ns["network"]


class Network(torch.nn.Module):
    def __init__(self, model, stem_ids):
        super().__init__()
        self.model = model
        self.stem_ids = stem_ids
        self.fn = network_fn(type(model))
        self.scnet = type(model).__name__ == "SCNet"

    def forward(self, x):
        if self.scnet:
            # [B, 2C · sources, F, T] → [B, sources, 2C, F, T]; with a target, its
            # source alone (demix slices a model that returns every instrument).
            y = self.fn(self.model, x)
            y = y.reshape(y.shape[0], -1, x.shape[1], y.shape[2], y.shape[3])
            if self.stem_ids is not None:
                y = y[:, self.stem_ids[0]:self.stem_ids[0] + 1]
            return y
        if self.stem_ids is None:
            return self.fn(self.model, x)
        return self.fn(self.model, x, active_stem_ids=self.stem_ids)


def scnet_padding(length, hop):
    """The zeros SCNet.forward appends: up to a whole number of hops (at least
    one sample), then one hop more if the hop count is even."""
    padding = hop - length % hop
    if (length + padding) // hop % 2 == 0:
        padding += hop
    return padding


def _ortho_dft_matrices(frames):
    """float32 matrices, built in float64, of rfft (`[T, K]`, real and imaginary
    parts) and irfft (`[K, T]`) over `frames` samples with norm "ortho". The
    inverse reads only the real part of the DC and Nyquist bins, as irfft does."""
    import numpy as np

    if frames % 2:
        raise ExportError(f"SCNet's frame count {frames} is odd; its forward pads to an even one")
    k = np.arange(frames // 2 + 1)
    ang = 2 * np.pi * np.outer(np.arange(frames), k) / frames  # [T, K]
    scale = 1 / np.sqrt(frames)
    w = np.full(len(k), 2.0)
    w[0] = w[-1] = 1.0
    f32 = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    forward = (f32(np.cos(ang) * scale), f32(-np.sin(ang) * scale))
    inverse = (f32(w[:, None] * np.cos(ang.T) * scale), f32(-w[:, None] * np.sin(ang.T) * scale))
    return forward, inverse


class _OrthoDft(torch.nn.Module):
    """`FeatureConversion` of SCNet with its rfft/irfft over the last axis as
    products with the DFT matrices (the same tensors for every layer, so the
    graph stores them once)."""

    def __init__(self, conv, matrices):
        super().__init__()
        self.inverse, self.channels = conv.inverse, conv.channels
        self.re, self.im = matrices[1] if self.inverse else matrices[0]

    def forward(self, x):
        x = x.float()
        if self.inverse:
            h = self.channels // 2
            return x[:, :h] @ self.re + x[:, h:] @ self.im
        return torch.cat([x @ self.re, x @ self.im], dim=1)


def share_constants(path):
    """Stores each large constant of the graph once: the tracer copies a tensor
    used in several layers (SCNet's DFT matrices) into one Constant node per use."""
    import hashlib

    import onnx

    model = onnx.load(path)
    seen, rename, keep = {}, {}, []
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute[0].name == "value":
            t = node.attribute[0].t
            if len(t.raw_data) >= 4096:
                key = (t.data_type, tuple(t.dims), hashlib.sha256(t.raw_data).hexdigest())
                if key in seen:
                    rename[node.output[0]] = seen[key]
                    continue
                seen[key] = node.output[0]
        keep.append(node)
    if not rename:
        return
    for node in keep:
        for i, name in enumerate(node.input):
            node.input[i] = rename.get(name, name)
    del model.graph.node[:]
    model.graph.node.extend(keep)
    onnx.checker.check_model(model)
    onnx.save(model, path)


class dft_as_matmul:
    """While exporting, SCNet's FeatureConversions compute their FFTs as matrix
    products (the TorchScript exporter has no FFT, and tract no DFT)."""

    def __init__(self, model, frames):
        self.model, self.frames, self.saved = model, frames, None

    def __enter__(self):
        if type(self.model).__name__ != "SCNet":
            return
        sep = self.model.separation_net
        self.saved = sep.feature_conversion
        matrices = _ortho_dft_matrices(self.frames)
        sep.feature_conversion = torch.nn.ModuleList(_OrthoDft(c, matrices) for c in self.saved)

    def __exit__(self, *exc):
        if self.saved is not None:
            self.model.separation_net.feature_conversion = self.saved


def input_width(model):
    """The network input's last dimension: the bands' (bin, channel) rows, with
    real and imaginary parts (mel bands overlap, so their rows repeat bins)."""
    if hasattr(model, "freq_indices"):
        return 2 * int(model.freq_indices.numel())  # (bin, channel) pairs already
    return sum(model.band_split.dim_inputs)


def heads_of(model):
    """The stems the module's network computes."""
    if hasattr(model, "mask_estimators"):
        return len(model.mask_estimators)
    if type(model).__name__ == "SCNet":
        return len(model.sources)
    return model.num_target_instruments


def stems_of(config, heads):
    """The package's stems, the network heads it runs (None: all), and whether
    a residual (mixture − target) stem is added."""
    instruments = list(config.training.instruments)
    target = config.training.get("target_instrument")
    if target:
        if target not in instruments:
            raise ExportError(f"training.target_instrument {target!r} is not in training.instruments {instruments}")
        others = [i for i in instruments if i != target]
        # The other instrument, or msst's name for mixture − target (extract_instrumental).
        rest = others[0] if len(others) == 1 else "instrumental"
        if rest == target:
            raise ExportError(f"the target {target!r} and the rest of the mixture would share a name")
        stems = [target, rest]
        # demix picks the target's head when the model has one per instrument.
        stem_ids = [instruments.index(target)] if heads == len(instruments) else None
        if stem_ids is None and heads != 1:
            raise ExportError(f"{heads} network stems for one target instrument")
        return stems, stem_ids, True
    if heads != len(instruments):
        raise ExportError(f"{heads} network stems but {len(instruments)} training.instruments")
    return instruments, None, False


def export(model_type, config, model, out_dir, name, opset=17, attention_block=128):
    fam = FAMILIES[model_type]
    m = config.model
    sr = int(config.audio.get("sample_rate", 44100))
    chunk = int(config.inference.get("chunk_size", config.audio.chunk_size))
    inf = config.inference

    def positive_int(key):
        v = inf.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ExportError(f"inference.{key} must be a positive integer (msst's demix needs it), got {v!r}")
        return v

    if attention_block < 1:
        raise ExportError(f"--attention-block must be at least 1, got {attention_block}")
    msst = {"chunk_size": chunk, "num_overlap": positive_int("num_overlap"), "batch_size": positive_int("batch_size"),
            "normalize": bool(inf.get("normalize", False))}
    if msst["num_overlap"] > chunk:
        raise ExportError(f"inference.num_overlap {msst['num_overlap']} is larger than the chunk ({chunk})")
    if model_type == "mdx23c":
        a = config.audio
        channels, n_fft, hop, dim_f = int(a.num_channels), int(a.n_fft), int(a.hop_length), int(a.dim_f)
        if channels != 2:
            raise ExportError("audio.num_channels must be 2: MDX23C's inverse STFT assumes stereo")
        if chunk % hop:
            raise ExportError(f"chunk_size {chunk} is not a multiple of hop_length {hop} (msst's demix fails on it)")
        frames = 1 + chunk // hop
        stems, stem_ids, residual = stems_of(config, heads_of(model))
        net_stems = model.num_target_instruments
        in_shape, out_shape = [-1, 2 * channels, dim_f, frames], [-1, net_stems, 2 * channels, dim_f, frames]
        names = ("spec", "spec_out")
        extra = {"mdx23c": {"dim_f": dim_f}}
        stft = {"n_fft": n_fft, "hop_length": hop, "window": "hann", "center": True, "pad_mode": "reflect",
                "normalized": False}
    elif model_type == "scnet":
        channels = int(model.audio_channels)
        if channels != 2:
            raise ExportError("audio_channels must be 2: msst's demix makes every input stereo")
        if int(model.dims[0]) != 2 * channels:
            raise ExportError(f"dims[0] must be 2 · audio_channels = {2 * channels}, got {model.dims[0]}")
        sc = model.stft_config
        n_fft, hop, win = int(sc["n_fft"]), int(sc["hop_length"]), int(sc["win_length"])
        if win > n_fft:
            raise ExportError(f"win_size {win} is larger than nfft {n_fft}")
        sources = list(model.sources)
        instruments = list(config.training.instruments)
        if len(sources) != len(instruments):
            raise ExportError(f"model.sources {sources} and training.instruments {instruments} differ in length "
                              "(demix names the outputs by position)")
        stems, stem_ids, residual = stems_of(config, heads_of(model))
        net_stems = 1 if stem_ids else len(sources)
        frames = (chunk + scnet_padding(chunk, hop)) // hop + 1
        bins = n_fft // 2 + 1
        in_shape, out_shape = [-1, 2 * channels, bins, frames], [-1, net_stems, 2 * channels, bins, frames]
        names = ("spec", "spec_out")
        extra = {}
        stft = {"n_fft": n_fft, "hop_length": hop, "win_length": win, "window": "rectangular", "center": True,
                "pad_mode": "reflect", "normalized": bool(sc["normalized"])}
    else:
        if not m.get("stereo", False):
            raise ExportError("stereo: false: msst's demix makes every input stereo, so msst cannot run this model")
        channels = 2
        n_fft = int(m.get("stft_n_fft", 2048))
        hop = int(m.get("stft_hop_length", 512))
        win = int(m.get("stft_win_length", 2048))
        if win != n_fft:
            raise ExportError(f"stft_win_length {win} differs from stft_n_fft {n_fft}; splitsound needs them equal")
        if m.get("stft_normalized", False):
            raise ExportError("stft_normalized: true is not supported (no known model uses it)")
        frames = 1 + chunk // hop
        if chunk <= n_fft // 2:
            raise ExportError(f"chunk_size {chunk} is not longer than stft_n_fft / 2 ({n_fft // 2})")
        if model_type == "mel_band_roformer" and not m.get("match_input_audio_length", False) and chunk % hop:
            raise ExportError(f"chunk_size {chunk} is not a multiple of stft_hop_length {hop}: without "
                              "match_input_audio_length the model returns fewer samples and msst's demix fails")
        stems, stem_ids, residual = stems_of(config, heads_of(model))
        net_stems = 1 if stem_ids else heads_of(model)
        for mod in model.modules():
            # msst's Attend through SDPA, which the export computes a block of query
            # rows at a time (chunked_attention): at the released 801 frames the
            # time attention's whole score matrix is 1.3 GB per layer.
            if type(mod).__name__ == "Attend" and hasattr(mod, "flash"):
                mod.flash = True
        width = input_width(model)
        in_shape, out_shape = [-1, frames, width], [-1, net_stems, frames, width]
        names = ("x", "mask")
        roformer = {"zero_dc": bool(m.get("zero_dc", True))}
        if model_type == "bs_roformer":
            # From the module (the config may rely on the class's default bands).
            roformer["freqs_per_bands"] = [d // (2 * channels) for d in model.band_split.dim_inputs]
        else:
            roformer["num_bands"] = int(m.get("num_bands", 60))
            # The bins the module computed (librosa's mel filters), so they are not
            # recomputed elsewhere down to the last ulp.
            bands = []
            if not hasattr(model, "freqs_per_band"):
                raise ExportError("this msst's MelBandRoformer keeps no freqs_per_band; revisit export_msst.py")
            for row in model.freqs_per_band.tolist():
                bins = [k for k, on in enumerate(row) if on]
                if bins != list(range(bins[0], bins[-1] + 1)):
                    raise ExportError("a mel band that is not a run of consecutive bins")
                bands.append([bins[0], bins[-1]])
            roformer["mel_bands"] = bands
            mel_sr = int(m.get("sample_rate", 44100))
            if mel_sr != sr:
                roformer["mel_sample_rate"] = mel_sr
            roformer["match_input_audio_length"] = bool(m.get("match_input_audio_length", False))
        extra = {"roformer": roformer}
        stft = {"n_fft": n_fft, "hop_length": hop, "window": "hann", "center": True, "pad_mode": "reflect",
                "normalized": False}
    msst["residual"] = residual
    net = Network(model, stem_ids).eval()
    os.makedirs(out_dir, exist_ok=True)
    onnx_name = f"{name}.onnx"
    onnx_path = os.path.join(out_dir, onnx_name)
    x = torch.randn(1, *in_shape[1:])
    sdpa = torch.nn.functional.scaled_dot_product_attention
    torch.nn.functional.scaled_dot_product_attention = chunked_attention(attention_block)
    try:
        with torch.no_grad(), dft_as_matmul(model, in_shape[-1]):
            y = net(x)
            assert list(y.shape[1:]) == out_shape[1:], (tuple(y.shape), out_shape)
            torch.onnx.export(net, (x,), onnx_path, input_names=[names[0]], output_names=[names[1]],
                              dynamic_axes={names[0]: {0: "batch"}, names[1]: {0: "batch"}}, opset_version=opset,
                              do_constant_folding=True, dynamo=False)
    finally:
        torch.nn.functional.scaled_dot_product_attention = sdpa
    accumulate_in_double(onnx_path)
    share_constants(onnx_path)
    manifest = {
        "format_version": 1,
        "name": name,
        "family": fam,
        "sample_rate": sr,
        "channels": channels,
        "stems": stems,
        "segment_samples": chunk,
        "stft": stft,
        "msst": msst,
        **extra,
        "inputs": [{"name": names[0], "shape": in_shape}],
        "outputs": [{"name": names[1], "shape": out_shape}],
        "files": [{"path": onnx_name}],
    }
    with open(os.path.join(out_dir, f"{name}.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    embed(onnx_path, manifest)
    return manifest


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-type", choices=sorted(FAMILIES), help="msst's name (default: training.model_type)")
    ap.add_argument("--config", required=True, help="the model's config yaml")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="its weights (.ckpt / .pth)")
    src.add_argument("--seed", type=int, help="random weights from this seed instead (tests, benchmarks)")
    ap.add_argument("--out", required=True, help="the package's folder")
    ap.add_argument("--name", help="the package's name (default: the config file's)")
    ap.add_argument("--attention-block", type=int, default=128,
                    help="RoFormers: query rows per attention block in the graph; bounds its memory")
    args = ap.parse_args(argv)
    try:
        config = load_config(args.config)
        # As msst: the config's training.model_type wins over the one asked for.
        model_type = config.training.get("model_type") or args.model_type
        if model_type is None:
            raise ExportError("no --model-type and no training.model_type in the config")
        if args.model_type and model_type != args.model_type:
            print(f"export_msst: the config's training.model_type {model_type!r} wins over --model-type "
                  f"{args.model_type!r}, as in msst", file=sys.stderr)
        if model_type not in FAMILIES:
            raise ExportError(f"model type {model_type!r}: this exporter writes {', '.join(sorted(FAMILIES))}")
        if args.seed is not None:
            torch.manual_seed(args.seed)
        model = build(model_type, config)
        if args.checkpoint:
            load_checkpoint(model, args.checkpoint)
        model.eval()
        name = args.name or os.path.splitext(os.path.basename(args.config))[0]
        manifest = export(model_type, config, model, args.out, name, attention_block=args.attention_block)
    except ExportError as e:
        sys.exit(f"export_msst: {e}")
    print(f"wrote {args.out}/{manifest['name']}.json ({manifest['family']}, stems {manifest['stems']})")


if __name__ == "__main__":
    main()
