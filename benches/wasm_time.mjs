// Times a separator in the WebAssembly package (wasm/pkg) under Node: a built-in by name, or a
// model package by the path of its manifest (run on tract, as in the browser).
//   node benches/wasm_time.mjs INPUT METHOD RUNS   → one JSON line: median and minimum wall time
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { initSync, decode, separate, Model } from "../wasm/pkg/splitsound.js";

initSync({ module: readFileSync(new URL("../wasm/pkg/splitsound_bg.wasm", import.meta.url)) });
const [input, method, runs] = [process.argv[2], process.argv[3], Number(process.argv[4] || 5)];
const audio = decode(readFileSync(input), input.split(".").pop());
let model = null;
if (method.endsWith(".json")) {
  const manifest = readFileSync(method, "utf8");
  const names = JSON.parse(manifest).files.map((f) => f.path);
  model = new Model(manifest, names, names.map((n) => readFileSync(join(dirname(method), n))));
}
const times = [];
for (let i = 0; i < runs; i++) {
  const t = performance.now();
  const stems = model ? model.separate(audio) : separate(method, audio);
  times.push((performance.now() - t) / 1000);
  stems.free();
}
times.sort((a, b) => a - b);
console.log(JSON.stringify({ method, runs, median_s: times[Math.floor(runs / 2)], min_s: times[0], frames: audio.frames }));
