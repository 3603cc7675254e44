// Which ONNX engine for the browser: the network alone, on the same graphs and inputs, in Node's
// WebAssembly, one thread each: tract inside our package (Model.runGraph) against onnxruntime-web
// (npm, its WASM backend). `npm ci` in benches/ installs the pinned onnxruntime-web.
//   node benches/wasm_engines.mjs RUNS   → one JSON line per graph: median milliseconds of each
import { readFileSync } from "node:fs";
import * as ort from "onnxruntime-web";
import { initSync, Model } from "../wasm/pkg/splitsound.js";

initSync({ module: readFileSync(new URL("../wasm/pkg/splitsound_bg.wasm", import.meta.url)) });
ort.env.wasm.numThreads = 1;
const runs = Number(process.argv[2] || 7);
const data = new URL("../core/tests/data/neural/", import.meta.url);
// Package, graph file, and its inputs' shapes as the pipelines feed them (one segment, batch 1).
const graphs = [
  ["demucs/ci.json", "ci.onnx", { mix: [1, 2, 22050], spec: [1, 4, 2048, 22] }],
  ["umx/umx-ci.json", "umx-ci.vocals.onnx", { magnitude: [1, 2, 2049, 256] }],
  ["mdx/mdx-random.json", "mdx-random.onnx", null],
];
const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
for (const [manifestPath, file, given] of graphs) {
  const manifest = JSON.parse(readFileSync(new URL(manifestPath, data), "utf8"));
  const dir = new URL(manifestPath.replace(/[^/]*$/, ""), data);
  const names = manifest.files.map((f) => f.path);
  const model = new Model(JSON.stringify(manifest), names, names.map((n) => readFileSync(new URL(n, dir))));
  const shapes = given ?? Object.fromEntries(manifest.inputs.map((i) => [i.name, i.shape.map((d) => (d < 0 ? 1 : d))]));
  const inputs = Object.fromEntries(
    Object.entries(shapes).map(([name, dims]) => {
      const n = dims.reduce((a, b) => a * b, 1);
      const x = new Float32Array(n);
      for (let i = 0; i < n; i++) x[i] = Math.sin(i * 0.37) * 0.3;
      return [name, { data: x, dims }];
    }),
  );
  const session = await ort.InferenceSession.create(readFileSync(new URL(file, dir)));
  const feeds = Object.fromEntries(Object.entries(inputs).map(([n, t]) => [n, new ort.Tensor("float32", t.data, t.dims)]));
  const index = names.indexOf(file);
  const ours = [], theirs = [];
  let diff = 0;
  for (let r = 0; r < runs + 1; r++) {
    let t = performance.now();
    const a = model.runGraph(index, inputs);
    const ta = performance.now() - t;
    t = performance.now();
    const b = await session.run(feeds);
    const tb = performance.now() - t;
    if (r === 0) {
      for (const name of session.outputNames) {
        const x = a[name].data, y = b[name].data;
        for (let i = 0; i < x.length; i++) diff = Math.max(diff, Math.abs(x[i] - y[i]));
      }
      continue; // the first run optimises tract's plan for these shapes
    }
    ours.push(ta);
    theirs.push(tb);
  }
  console.log(JSON.stringify({ graph: file, shapes, tract_ms: median(ours), ort_web_ms: median(theirs), max_abs_diff: diff }));
}
