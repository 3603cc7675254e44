// Times a built-in separator in the WebAssembly package (wasm/pkg) under Node.
//   node benches/wasm_time.mjs INPUT METHOD RUNS   → one JSON line: median and minimum wall time
import { readFileSync } from "node:fs";
import { initSync, decode, separate } from "../wasm/pkg/splitsound.js";

initSync({ module: readFileSync(new URL("../wasm/pkg/splitsound_bg.wasm", import.meta.url)) });
const [input, method, runs] = [process.argv[2], process.argv[3], Number(process.argv[4] || 5)];
const audio = decode(readFileSync(input), input.split(".").pop());
const times = [];
for (let i = 0; i < runs; i++) {
  const t = performance.now();
  const stems = separate(method, audio);
  times.push((performance.now() - t) / 1000);
  stems.free();
}
times.sort((a, b) => a - b);
console.log(JSON.stringify({ method, runs, median_s: times[Math.floor(runs / 2)], min_s: times[0], frames: audio.frames }));
