#!/usr/bin/env python3
"""Export Meta's SAM-Audio (text-prompted separation) to a splitsound model
package (family `sam-audio`): four ONNX graphs, the T5 tokenizer and a manifest.

The PyTorch modules are ours (_sam_audio_model.py: T5 encoder and the velocity
network; _sam_audio_codec.py: the DAC-VAE codec), written from the architecture
and proved against the reference data that Meta's code computed
(../shared/reference/sam-audio-tiny/): `--check DIR` compares every graph,
run in ONNX Runtime, with that data's intermediates and fails above 1e-5 of the peak.

Two input layouts:
- the reference data's own: per-component safetensors (`text_encoder`,
  `dit`, `codec`) with config.json (`sam_audio_config`, `t5_config`) and
  tokenizer.json in one folder:

      python3 python/tools/export_sam_audio.py --dir ../shared/reference/sam-audio-tiny \\
          --out sam-audio-tiny --check ../shared/reference/sam-audio-tiny

- a checkpoint as Meta publishes it: `--checkpoint` (a state dict, .pt or
  .safetensors, with SAMAudio's names: `audio_codec.*`, `transformer.*`, …,
  and `text_encoder.model.*` when the T5 is inside it) with `--config` (the
  SAMAudioConfig kwargs, or a file holding them under `sam_audio_config`),
  plus the T5 encoder (`--t5 DIR`: its config.json, model.safetensors or
  pytorch_model.bin, and tokenizer.json) when the checkpoint lacks it.

Graph inputs are float32 (ids, masks and bits too; exact below 2^24), as the
Rust side feeds every graph. The manifest's `segment_samples` is the chunk a
long input is separated in (`--chunk-seconds`), cross-faded over `--crossfade-seconds`.
"""
import argparse
import json
import os
import shutil
import sys

import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _sam_audio_codec import load_codec  # noqa: E402
from _sam_audio_model import SamAudioVelocity, T5Encoder  # noqa: E402

OPSET = 17


class ExportError(Exception):
    pass


def load_state(path):
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    sd = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("model", "state_dict", "model_state_dict"):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    return sd


def find_weights(folder):
    for name in ("model.safetensors", "pytorch_model.bin"):
        if os.path.isfile(os.path.join(folder, name)):
            return os.path.join(folder, name)
    raise ExportError(f"{folder}: no model.safetensors or pytorch_model.bin")


def load_sources(args):
    """(sam_audio_config, t5_config, text state, velocity state, codec state, tokenizer path)."""
    if args.dir:
        d = args.dir
        cfg = json.load(open(os.path.join(d, "config.json")))
        st = {n: load_state(os.path.join(d, n + ".safetensors")) for n in ("text_encoder", "dit", "codec")}
        return cfg["sam_audio_config"], cfg["t5_config"], st["text_encoder"], st["dit"], st["codec"], \
            os.path.join(d, "tokenizer.json")
    if not (args.checkpoint and args.config):
        raise ExportError("give --dir, or --checkpoint with --config")
    cfg = json.load(open(args.config))
    cfg = cfg.get("sam_audio_config", cfg)
    sd = load_state(args.checkpoint)
    text = {k: v for k, v in sd.items() if k.startswith("text_encoder.model.")}
    if args.t5:
        t5_cfg = json.load(open(os.path.join(args.t5, "config.json")))
        if not text:
            text = load_state(find_weights(args.t5))
        tok = os.path.join(args.t5, "tokenizer.json")
    else:
        raise ExportError("--t5 DIR is needed: the T5 encoder's config.json and tokenizer.json")
    if not text:
        raise ExportError("no T5 weights: neither `text_encoder.model.*` in the checkpoint nor in --t5")
    if not os.path.isfile(tok):
        raise ExportError(f"{tok} is missing (the fast tokenizer's JSON; `tokenizer.save('tokenizer.json')` writes it)")
    codec = {k: v for k, v in sd.items() if k.startswith("audio_codec.")}
    return cfg, t5_cfg, text, sd, codec, tok


def check_codec_config(c):
    mean, std = c.get("mean", 0.0), c.get("std", 1.0)
    if mean != 0.0 or std != 1.0:
        raise ExportError(f"audio_codec mean/std {mean}/{std}: only the unnormalised latent (0/1) is verified "
                          "against Meta's code")


class TextGraph(nn.Module):
    def __init__(self, t5):
        super().__init__()
        self.t5 = t5

    def forward(self, input_ids, attention_mask):
        return self.t5(input_ids.long(), attention_mask)


class EncoderGraph(nn.Module):
    def __init__(self, codec):
        super().__init__()
        self.codec = codec

    def forward(self, audio):
        return self.codec.encode_mean(audio)


class VelocityGraph(nn.Module):
    def __init__(self, v):
        super().__init__()
        self.v = v

    def forward(self, noisy, time, audio_features, text_features, text_mask, audio_mask, anchor_ids):
        return self.v(noisy, time, audio_features, text_features, text_mask, audio_mask, anchor_ids.long())


class DecoderGraph(nn.Module):
    def __init__(self, codec):
        super().__init__()
        self.codec = codec

    def forward(self, latent, message):
        return self.codec.decode(latent, message)


def spec(name, shape):
    return {"name": name, "shape": list(shape)}


def export_graphs(out, name, t5, vel, codec, sizes):
    c, d, bits, hop = sizes["c"], sizes["d"], sizes["bits"], sizes["hop"]
    b, l, t = 1, 5, 4
    graphs = [
        ("text_encoder", TextGraph(t5), (torch.tensor([[5.0, 6, 7, 1, 0]]), torch.tensor([[1.0, 1, 1, 1, 0]])),
         [spec("input_ids", [-1, -1]), spec("attention_mask", [-1, -1])], [spec("text_features", [-1, -1, d])],
         {"input_ids": {0: "b", 1: "l"}, "attention_mask": {0: "b", 1: "l"}, "text_features": {0: "b", 1: "l"}}),
        ("codec_encoder", EncoderGraph(codec), (torch.randn(b, 1, t * hop) * 0.1,),
         [spec("audio", [-1, 1, -1])], [spec("latent_mean", [-1, c, -1])],
         {"audio": {0: "b", 2: "n"}, "latent_mean": {0: "b", 2: "t"}}),
        ("velocity", VelocityGraph(vel),
         (torch.randn(b, t, 2 * c), torch.tensor([0.5]), torch.randn(b, t, 2 * c), torch.randn(b, l, d),
          torch.ones(b, l), torch.ones(b, t), torch.zeros(b, t)),
         [spec("noisy", [-1, -1, 2 * c]), spec("time", [-1]), spec("audio_features", [-1, -1, 2 * c]),
          spec("text_features", [-1, -1, d]), spec("text_mask", [-1, -1]), spec("audio_mask", [-1, -1]),
          spec("anchor_ids", [-1, -1])],
         [spec("velocity", [-1, -1, 2 * c])],
         {"noisy": {0: "b", 1: "t"}, "time": {0: "b"}, "audio_features": {0: "b", 1: "t"},
          "text_features": {0: "b", 1: "l"}, "text_mask": {0: "b", 1: "l"}, "audio_mask": {0: "b", 1: "t"},
          "anchor_ids": {0: "b", 1: "t"}, "velocity": {0: "b", 1: "t"}}),
        ("codec_decoder", DecoderGraph(codec), (torch.randn(b, c, t), torch.ones(b, bits)),
         [spec("latent", [-1, c, -1]), spec("message", [-1, bits])], [spec("audio", [-1, 1, -1])],
         {"latent": {0: "b", 2: "t"}, "message": {0: "b"}, "audio": {0: "b", 2: "n"}}),
    ]
    files = []
    for role, module, example, inputs, outputs, dyn in graphs:
        path = f"{name}.{role}.onnx"
        with torch.no_grad():
            torch.onnx.export(module.eval(), example, os.path.join(out, path),
                              input_names=[i["name"] for i in inputs], output_names=[o["name"] for o in outputs],
                              dynamic_axes=dyn, opset_version=OPSET, dynamo=False)
        files.append({"path": path, "inputs": inputs, "outputs": outputs})
    return files


def check(out, manifest, ref):
    """Each graph in ONNX Runtime against the reference intermediates."""
    import onnxruntime as ort

    L = lambda n: np.load(os.path.join(ref, n + ".npy"))  # noqa: E731
    f = lambda i: ort.InferenceSession(os.path.join(out, manifest["files"][i]["path"]),  # noqa: E731
                                       providers=["CPUExecutionProvider"])
    anchors = np.take_along_axis(L("batch_anchor_ids"), L("batch_anchor_alignment"), 1).astype(np.float32)
    f32 = lambda a: a.astype(np.float32)  # noqa: E731
    results = {}
    results["text_features"] = (f(0).run(None, {"input_ids": f32(L("t5_input_ids")),
                                                "attention_mask": f32(L("t5_attention_mask"))})[0],
                                L("t5_last_hidden_state"))
    results["codec mean"] = (f(1).run(None, {"audio": L("codec_input_padded")})[0], L("codec_mean"))
    vel = f(2)
    worst = (0.0, None)
    nt, ny, no = L("nfe_time"), L("nfe_noisy_audio"), L("nfe_dit_out")
    for i in range(nt.shape[0]):
        o = vel.run(None, {"noisy": ny[i], "time": nt[i], "audio_features": L("audio_features"),
                           "text_features": L("t5_last_hidden_state"), "text_mask": f32(L("t5_attention_mask")),
                           "audio_mask": f32(L("batch_audio_pad_mask")), "anchor_ids": anchors})[0]
        e = np.abs(o - no[i]).max() / np.abs(no[i]).max()
        if e >= worst[0]:
            worst = (e, (o, no[i]))
    results[f"velocity (worst of {nt.shape[0]})"] = worst[1]
    results["decoded audio"] = (f(3).run(None, {"latent": L("decode_latent_in"),
                                                "message": f32(L("watermark_message"))})[0], L("decoder_out"))
    bad = False
    for k, (got, want) in results.items():
        e = float(np.abs(got - want).max() / np.abs(want).max())
        bad |= not e <= 1e-5
        print(f"  {k:28s} max|diff|/peak {e:.2e}")
    if bad:
        raise ExportError("a graph differs from the reference by more than 1e-5 of the peak")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", help="the reference data's layout: text_encoder/dit/codec.safetensors, config.json, "
                                 "tokenizer.json")
    p.add_argument("--checkpoint", help="Meta's checkpoint (state dict, .pt or .safetensors)")
    p.add_argument("--config", help="its config.json (SAMAudioConfig kwargs)")
    p.add_argument("--t5", help="folder of the T5 encoder: config.json, weights, tokenizer.json")
    p.add_argument("--out", required=True)
    p.add_argument("--name")
    p.add_argument("--chunk-seconds", type=float, default=30.0)
    p.add_argument("--crossfade-seconds", type=float, default=2.0)
    p.add_argument("--check", metavar="REFDIR", help="compare the graphs with the reference data in REFDIR")
    args = p.parse_args()
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    try:
        cfg, t5_cfg, text_sd, vel_sd, codec_sd, tok = load_sources(args)
        check_codec_config(cfg["audio_codec"])
        t5 = T5Encoder(t5_cfg)
        t5.load(text_sd)
        vel = SamAudioVelocity(cfg)
        vel.load(vel_sd)
        codec = load_codec(codec_sd, cfg["audio_codec"])
        if cfg["text_encoder"]["dim"] != t5_cfg["d_model"]:
            raise ExportError(f"text_encoder.dim {cfg['text_encoder']['dim']} is not the T5's d_model "
                              f"{t5_cfg['d_model']}")
    except (ExportError, ValueError, KeyError, FileNotFoundError) as e:
        sys.exit(f"export_sam_audio: {e}")
    for m in (t5, vel, codec):
        m.eval()
    c = cfg["audio_codec"]["codebook_dim"]
    hop = codec.hop
    sizes = {"c": c, "d": t5_cfg["d_model"], "bits": codec.decoder.wm_model.msg_processor.nbits, "hop": hop}
    if vel.out_channels != 2 * c:
        sys.exit(f"export_sam_audio: transformer out_channels {vel.out_channels} is not 2 · codebook_dim {2 * c}")
    rate = cfg["audio_codec"].get("sample_rate", 48000)
    name = args.name or os.path.basename(os.path.normpath(args.out))
    os.makedirs(args.out, exist_ok=True)
    files = export_graphs(args.out, name, t5, vel, codec, sizes)
    shutil.copyfile(tok, os.path.join(args.out, f"{name}.tokenizer.json"))
    frames = lambda s: max(1, round(s * rate / hop))  # noqa: E731
    seg, fade = frames(args.chunk_seconds), frames(args.crossfade_seconds)
    if fade >= seg:
        sys.exit("export_sam_audio: the cross-fade must be shorter than the chunk")
    manifest = {
        "format_version": 1,
        "name": name,
        "family": "sam-audio",
        "sample_rate": rate,
        "channels": 1,
        "stems": ["target", "residual"],
        "segment_samples": seg * hop,
        "sam_audio": {
            "hop_length": hop,
            "latent_channels": c,
            "tokenizer": f"{name}.tokenizer.json",
            "text_max_length": cfg["text_encoder"].get("max_length", 512),
            # separate()'s default ode_opt: midpoint, step_size 2/32.
            "ode_steps": 16,
            "watermark_bits": sizes["bits"],
            "pad_anchor": cfg["num_anchors"],
            "crossfade_samples": fade * hop,
        },
        "files": files,
    }
    with open(os.path.join(args.out, f"{name}.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    n = sum(p.numel() for m in (t5, vel, codec) for p in m.parameters())
    print(f"{args.out}/{name}.json: 4 graphs, {n / 1e6:.2f} M parameters")
    if args.check:
        try:
            check(args.out, manifest, args.check)
        except ExportError as e:
            sys.exit(f"export_sam_audio: {e}")


if __name__ == "__main__":
    main()
