#!/usr/bin/env python3
"""Model packages for UVR / audio-separator MDX-Net ONNX models (family `mdx`).

Wrap a real model (its parameters are in UVR's model data, e.g. `mdx_dim_f_set`,
`mdx_dim_t_set`, `mdx_n_fft_scale_set`, `compensate`, `primary_stem`):
    python3 python/tools/mdx_package.py wrap UVR-MDX-NET-Inst_HQ_3.onnx \\
        --n-fft 6144 --dim-f 3072 --dim-t 8 --compensate 1.022 --primary Instrumental --secondary Vocals
Build a random MDX-shaped test graph (CI; needs only numpy and onnx), and the
same graph bare (no manifest anywhere, as UVR ships its files):
    python3 python/tools/mdx_package.py random --out core/tests/data/neural/mdx --seed 0 --bare

The graph maps the complex-as-channels spectrogram `input` [B, 4, dim_f, 2^dim_t]
(left re, left im, right re, right im; the first dim_f bins of a 1024-hop STFT)
to the primary stem's spectrogram `output` of the same shape.
"""
import argparse
import json
import os
import shutil
import sys

import numpy as np

HOP = 1024


def manifest(name, onnx_file, n_fft, dim_f, dim_t_log2, compensate, primary, secondary, batch):
    dim_t = 2 ** dim_t_log2
    shape = [batch, 4, dim_f, dim_t]
    return {
        "format_version": 1,
        "name": name,
        "family": "mdx",
        "sample_rate": 44100,
        "channels": 2,
        "stems": [primary, secondary],
        # audio-separator's chunk_size: hop · (segment_size − 1) with segment_size = dim_t.
        "segment_samples": HOP * (dim_t - 1),
        "stft": {"n_fft": n_fft, "hop_length": HOP, "window": "hann", "center": True, "pad_mode": "reflect",
                 "normalized": False},
        "mdx": {"dim_f": dim_f, "dim_t": dim_t, "compensate": compensate},
        "defaults": {"overlap": 0.25, "shifts": 0},
        "inputs": [{"name": "input", "shape": shape}],
        "outputs": [{"name": "output", "shape": shape}],
        "files": [{"path": onnx_file}],
    }


def write_manifest(out_dir, m):
    path = os.path.join(out_dir, m["name"] + ".json")
    with open(path, "w") as f:
        json.dump(m, f, indent=2)
        f.write("\n")
    return path


def random_graph(path, dim_f, dim_t, seed):
    """A small convolutional spectrogram-to-spectrogram network: a sigmoid mask
    from two 3×3 convolutions, times the input, plus a learned residual."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)

    def t(name, *shape, scale=0.3):
        return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)

    hidden = 8
    inits = [t("w1", hidden, 4, 3, 3), t("b1", hidden, scale=0.1), t("w2", 4, hidden, 3, 3), t("b2", 4, scale=0.1),
             t("w3", 4, 4, 1, 1, scale=0.05)]
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["h1"], pads=[1, 1, 1, 1]),
        helper.make_node("Tanh", ["h1"], ["a1"]),
        helper.make_node("Conv", ["a1", "w2", "b2"], ["h2"], pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["h2"], ["mask"]),
        helper.make_node("Mul", ["mask", "input"], ["masked"]),
        helper.make_node("Conv", ["input", "w3"], ["res"]),
        helper.make_node("Add", ["masked", "res"], ["output"]),
    ]
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 4, dim_f, dim_t])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 4, dim_f, dim_t])
    graph = helper.make_graph(nodes, "mdx-random", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="splitsound")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("wrap", help="write the manifest for an existing MDX-Net ONNX file")
    w.add_argument("onnx")
    w.add_argument("--n-fft", type=int, required=True)
    w.add_argument("--dim-f", type=int, required=True)
    w.add_argument("--dim-t", type=int, required=True, help="log2 of the frames, as UVR's mdx_dim_t_set")
    w.add_argument("--compensate", type=float, required=True)
    w.add_argument("--primary", required=True)
    w.add_argument("--secondary", required=True)
    w.add_argument("--name")
    r = sub.add_parser("random", help="build a random test graph and its manifest")
    r.add_argument("--out", required=True)
    r.add_argument("--name", default="mdx-random")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--n-fft", type=int, default=2048)
    r.add_argument("--dim-f", type=int, default=512)
    r.add_argument("--dim-t", type=int, default=5)
    r.add_argument("--compensate", type=float, default=1.035)
    r.add_argument("--bare", action="store_true", help="also write NAME-bare.onnx, without a manifest")
    args = p.parse_args()
    if args.cmd == "wrap":
        import onnx

        g = onnx.load(args.onnx).graph
        dims = [d.dim_value if d.dim_value > 0 else -1 for d in g.input[0].type.tensor_type.shape.dim]
        want = [4, args.dim_f, 2 ** args.dim_t]
        if len(dims) != 4 or dims[1:] != want:
            raise SystemExit(f"{args.onnx}: input {g.input[0].name} has shape {dims}, expected [batch, {want}]")
        name = args.name or os.path.splitext(os.path.basename(args.onnx))[0]
        m = manifest(name, os.path.basename(args.onnx), args.n_fft, args.dim_f, args.dim_t, args.compensate,
                     args.primary, args.secondary, dims[0])
        m["inputs"][0]["name"] = g.input[0].name
        m["outputs"][0]["name"] = g.output[0].name
        print("wrote", write_manifest(os.path.dirname(os.path.abspath(args.onnx)), m))
    else:
        os.makedirs(args.out, exist_ok=True)
        onnx_file = args.name + ".onnx"
        random_graph(os.path.join(args.out, onnx_file), args.dim_f, 2 ** args.dim_t, args.seed)
        if args.bare:
            shutil.copyfile(os.path.join(args.out, onnx_file), os.path.join(args.out, args.name + "-bare.onnx"))
        m = manifest(args.name, onnx_file, args.n_fft, args.dim_f, args.dim_t, args.compensate, "vocals",
                     "instrumental", -1)
        print("wrote", write_manifest(args.out, m))
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from _manifest import embed

        embed(os.path.join(args.out, onnx_file), m)


if __name__ == "__main__":
    main()
