#!/usr/bin/env python3
"""Builds the tiny ONNX graphs the model-package tests load (needs only `onnx`).

core/tests/data/models/tiny/tiny.onnx: input `mix` [1, 2, N] -> output `stems`
[1, 2, 2, N] = (mix, 0.5 * mix), with its manifest tiny.json.
    python3 scripts/make_test_models.py
"""
import json
import os

import onnx
from onnx import TensorProto, helper

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "core", "tests", "data", "models", "tiny")


def main():
    os.makedirs(OUT, exist_ok=True)
    mix = helper.make_tensor_value_info("mix", TensorProto.FLOAT, [1, 2, "n"])
    stems = helper.make_tensor_value_info("stems", TensorProto.FLOAT, [1, 2, 2, "n"])
    nodes = [
        helper.make_node("Unsqueeze", ["mix", "axis1"], ["u"]),
        helper.make_node("Mul", ["u", "half"], ["h"]),
        helper.make_node("Concat", ["u", "h"], ["stems"], axis=1),
    ]
    inits = [
        helper.make_tensor("axis1", TensorProto.INT64, [1], [1]),
        helper.make_tensor("half", TensorProto.FLOAT, [], [0.5]),
    ]
    graph = helper.make_graph(nodes, "tiny", [mix], [stems], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="splitsound-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(OUT, "tiny.onnx"))
    manifest = {
        "format_version": 1,
        "name": "tiny",
        "family": "mdx",
        "sample_rate": 44100,
        "channels": 2,
        "stems": ["full", "half"],
        "segment_samples": 4096,
        "inputs": [{"name": "mix", "shape": [1, 2, -1]}],
        "outputs": [{"name": "stems", "shape": [1, 2, 2, -1]}],
        "files": [{"path": "tiny.onnx"}],
    }
    with open(os.path.join(OUT, "tiny.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
