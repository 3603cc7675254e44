// The built npm package (wasm/pkg) in Node: decode the demo, separate it with the
// built-ins and with the demucs test model (tract here, ONNX Runtime natively), and
// compare every stem with the native CLI's 32-bit float output.
//   node wasm/tests/package.mjs DEMO.flac NATIVE_DIR   (NATIVE_DIR/<case>/mixture/<stem>.wav)
import { readFileSync } from "node:fs";
import { initSync, version, decode, separate, stemsOf, encode, Model, Cancel } from "../pkg/splitsound.js";

initSync({ module: readFileSync(new URL("../pkg/splitsound_bg.wasm", import.meta.url)) });
const [demoPath, nativeDir] = process.argv.slice(2);
const audio = decode(readFileSync(demoPath), "flac");
let failures = 0;
const model = new URL("../../core/tests/data/neural/demucs/", import.meta.url);
const loadModel = () =>
  new Model(readFileSync(new URL("ci.json", model), "utf8"), ["ci.onnx"], [readFileSync(new URL("ci.onnx", model))]);
for (const method of ["hpss", "center", "ci"]) {
  let reports = 0;
  const t0 = performance.now();
  const stems =
    method === "ci" ? loadModel().separate(audio, () => reports++) : separate(`builtin:${method}`, audio, () => reports++);
  const ms = performance.now() - t0;
  const names = stems.names();
  const want = method === "ci" ? ["drums", "bass", "other", "vocals"] : stemsOf(`builtin:${method}`);
  if (JSON.stringify(names) !== JSON.stringify(want) || reports === 0) failures++;
  const tolerance = method === "ci" ? 1e-4 : 1e-5;
  for (const name of names) {
    const native = decode(readFileSync(`${nativeDir}/${method}/mixture/${name}.wav`), "wav");
    const ours = stems.get(name);
    let worst = 0;
    for (let c = 0; c < ours.numberOfChannels; c++) {
      const a = ours.channel(c), b = native.channel(c);
      if (a.length !== b.length) { worst = Infinity; break; }
      for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
    }
    const ok = worst <= tolerance;
    if (!ok) failures++;
    console.log(`${method}/${name}: max |wasm - native| = ${worst.toExponential(2)} ${ok ? "ok" : "FAILED"}`);
  }
  console.log(`${method}: ${(audio.duration).toFixed(1)} s of audio in ${ms.toFixed(0)} ms (splitsound ${version()} wasm)`);
}
// Cancelling from the progress function stops a model's separation, with a typed error.
const cancel = new Cancel();
try {
  loadModel().separateCancellable(audio, () => cancel.cancel(), cancel);
  failures++;
  console.log("cancel: finished anyway, FAILED");
} catch (e) {
  if (e.code !== "cancelled" || e.kind !== "cancelled") failures++;
  console.log(`cancel: ${e.code} (${e.kind})`);
}

// The network alone, and a package that does not load.
const m = loadModel();
const dims = (o) => JSON.stringify(o.dims);
const out = m.runGraph(0, {
  mix: { data: new Float32Array(2 * 22050), dims: [1, 2, 22050] },
  spec: { data: new Float32Array(4 * 2048 * 22), dims: [1, 4, 2048, 22] },
});
if (dims(out.time) !== "[1,4,2,22050]" || dims(out.freq) !== "[1,4,4,2048,22]") failures++;
console.log(`runGraph: time ${dims(out.time)}, freq ${dims(out.freq)} on ${m.runsOn}`);
for (const [what, make] of [
  ["junk bytes", () => new Model(readFileSync(new URL("ci.json", model), "utf8"), ["ci.onnx"], [new Uint8Array(10)])],
  ["a missing file", () => new Model(readFileSync(new URL("ci.json", model), "utf8"), [], [])],
  ["bad options", () => new Model(null, ["ci.onnx"], [readFileSync(new URL("ci.onnx", model))], "{")],
]) {
  try {
    make();
    failures++;
    console.log(`${what}: loaded, FAILED`);
  } catch (e) {
    if (!(e instanceof Error) || !["model", "invalid_argument"].includes(e.code)) failures++;
    console.log(`${what}: ${e.code}: ${e.message.slice(0, 100)}`);
  }
}
try {
  encode(audio, "flac", 32);
  failures++;
} catch (e) {
  if (!(e instanceof Error) || e.code !== "invalid_argument") failures++;
}
if (failures) {
  console.error(`${failures} failures`);
  process.exit(1);
}
