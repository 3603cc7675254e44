"""Embedding a package's manifest in its ONNX file (single-file packages).

splitsound reads the metadata key `splitsound.manifest` when an ONNX file has no
sidecar `.json`, so one file can be handed around on its own.
"""
import json

KEY = "splitsound.manifest"


def embed(onnx_path, manifest):
    import onnx

    model = onnx.load(onnx_path)
    kept = [p for p in model.metadata_props if p.key != KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    model.metadata_props.add(key=KEY, value=json.dumps(manifest, separators=(",", ":")))
    onnx.save(model, onnx_path)
