#!/usr/bin/env python3
"""Checks server-example's layering: each top-level module of its `src/`
may import (`crate::…`) only modules of a lower layer, so no import loop can
run between them. Layers, lowest first:

    error, metrics  <  db, secrets  <  media  <  control  <  compute  <  config  <  app  <  http

`lib.rs` and `main.rs` (which only declare and re-export, and run) are not
checked. A re-export of the crate root (`crate::App`) counts as the module it
comes from. Exits 1, naming each offending line, when a module imports one at
its own layer or above, or when a module is missing from the list.

    python3 scripts/check-layers.py [SRC_DIR]
"""
import os
import re
import sys

LAYERS = [["error", "metrics"], ["db", "secrets"], ["media"], ["control"], ["compute"], ["config"], ["app"], ["http"]]
RANK = {m: i for i, layer in enumerate(LAYERS) for m in layer}
# What the crate root re-exports, by the module it comes from.
ROOT = {"App": "app", "Config": "config", "ServiceError": "error", "StartupError": "error",
        "openapi": "http", "serve": "http", "serve_ops": "http"}


def crate_refs(text):
    """(line number, first path segment) of every `crate::…` path, braces included."""
    for n, line in enumerate(text.splitlines(), 1):
        code = line.split("//", 1)[0]
        for m in re.finditer(r"\bcrate::(\{[^}]*\}|\w+)", code):
            group = m.group(1)
            names = [s.strip().split("::")[0] for s in group.strip("{}").split(",")] if group.startswith("{") else [group]
            for name in filter(None, names):
                yield n, name


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "server-example", "src")
    bad = []
    for root, _, files in os.walk(src):
        for f in sorted(files):
            if not f.endswith(".rs"):
                continue
            path = os.path.join(root, f)
            rel = os.path.relpath(path, src)
            if rel in ("lib.rs", "main.rs"):
                continue
            module = rel.split(os.sep)[0].removesuffix(".rs")
            if module not in RANK:
                bad.append(f"{rel}: module {module!r} is in no layer of scripts/check-layers.py")
                continue
            for n, name in crate_refs(open(path, encoding="utf-8").read()):
                target = ROOT.get(name, name)
                if target == module:
                    continue
                if target not in RANK:
                    bad.append(f"{rel}:{n}: crate::{name} is in no layer")
                elif RANK[target] >= RANK[module]:
                    bad.append(f"{rel}:{n}: {module} (layer {RANK[module]}) imports {target} (layer {RANK[target]})")
    if bad:
        print("server-example's layering is broken:\n  " + "\n  ".join(bad))
        return 1
    print(f"server-example's layers hold: {' < '.join('/'.join(layer) for layer in LAYERS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
