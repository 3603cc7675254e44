// The built npm package (wasm/pkg) in Node: decode the demo, separate it with the
// built-ins, and compare every stem with the native CLI's 32-bit float output.
//   node wasm/tests/package.mjs DEMO.flac NATIVE_DIR   (NATIVE_DIR/<method>/mixture/<stem>.wav)
import { readFileSync } from "node:fs";
import { initSync, version, decode, separate, stemsOf, encode } from "../pkg/splitsound.js";

initSync({ module: readFileSync(new URL("../pkg/splitsound_bg.wasm", import.meta.url)) });
const [demoPath, nativeDir] = process.argv.slice(2);
const audio = decode(readFileSync(demoPath), "flac");
let failures = 0;
for (const method of ["hpss", "center"]) {
  let reports = 0;
  const t0 = performance.now();
  const stems = separate(`builtin:${method}`, audio, () => reports++);
  const ms = performance.now() - t0;
  const names = stems.names();
  if (JSON.stringify(names) !== JSON.stringify(stemsOf(`builtin:${method}`)) || reports === 0) failures++;
  for (const name of names) {
    const native = decode(readFileSync(`${nativeDir}/${method}/mixture/${name}.wav`), "wav");
    const ours = stems.get(name);
    let worst = 0;
    for (let c = 0; c < ours.numberOfChannels; c++) {
      const a = ours.channel(c), b = native.channel(c);
      if (a.length !== b.length) { worst = Infinity; break; }
      for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
    }
    const ok = worst <= 1e-5;
    if (!ok) failures++;
    console.log(`${method}/${name}: max |wasm - native| = ${worst.toExponential(2)} ${ok ? "ok" : "FAILED"}`);
  }
  console.log(`${method}: ${(audio.duration).toFixed(1)} s of audio in ${ms.toFixed(0)} ms (splitsound ${version()} wasm)`);
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
