// End-to-end test of the demo page in headless Chromium (Debian's, driven by playwright-core):
// serves the page, loads the demo mix through its file input, separates it with a built-in, with the
// small demucs test model and with a description, and checks every stem against the native CLI's
// 32-bit float output, the progress the page showed while the worker ran, the waveforms and the
// download links; saves a screenshot of each result.
//   node examples/web/tests/e2e.mjs NATIVE_DIR OUT_DIR
// NATIVE_DIR/<case>/mixture/<stem>.wav come from `splitsound separate --bits 32f --clip none`
// (scripts/build-wasm.sh e2e writes them).
import { readFileSync, mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { chromiumOptions } from "../../../scripts/chromium.mjs";
import { serve } from "../serve.mjs";
import { initSync, decode } from "../../../wasm/pkg/splitsound.js";

const root = fileURLToPath(new URL("../../..", import.meta.url));
initSync({ module: readFileSync(`${root}/wasm/pkg/splitsound_bg.wasm`) });
const [nativeDir, outDir] = process.argv.slice(2);
if (!nativeDir || !outDir) throw new Error("usage: e2e.mjs NATIVE_DIR OUT_DIR");
mkdirSync(outDir, { recursive: true });

// Which page method and description each case uses, and how close it must come to native. The
// built-ins are the same code both sides; the model runs on tract here and ONNX Runtime natively.
const cases = [
  { name: "hpss", method: "builtin:hpss", tolerance: 1e-5 },
  { name: "ci", method: "test:0", tolerance: 1e-4 },
  { name: "ci-query", method: "test:0", query: "remove the vocals", tolerance: 1e-4 },
];

const server = await serve(0);
const url = `http://127.0.0.1:${server.address().port}/`;
const browser = await chromium.launch(chromiumOptions);
let failures = 0;
const check = (ok, what) => {
  if (!ok) failures++;
  console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
};

try {
  const page = await browser.newPage({ viewport: { width: 1000, height: 1400 } });
  page.on("pageerror", (e) => check(false, `no uncaught error in the page: ${e.message}`));
  page.on("console", (m) => m.type() === "error" && console.log(`page console: ${m.text()}`));
  await page.goto(url);
  await page.waitForFunction(() => window.splitsoundDemo?.ready, null, { timeout: 60_000 });
  await page.setInputFiles("#file", `${root}/examples/data/demo/mixture.flac`);
  await page.waitForFunction(() => !document.querySelector("#go").disabled);

  for (const c of cases) {
    await page.selectOption("#method", c.method);
    await page.fill("#query", c.query ?? "");
    await page.click("#go");
    await page.waitForFunction(() => window.splitsoundDemo.result || window.splitsoundDemo.error, null, {
      timeout: 600_000,
    });
    const error = await page.evaluate(() => window.splitsoundDemo.error);
    check(!error, `${c.name}: separated without error ${error ? JSON.stringify(error) : ""}`);
    if (error) continue;

    // The page's own state: what it drew and offers, and the progress it showed on the way.
    const shown = await page.evaluate(() => {
      const d = window.splitsoundDemo;
      return {
        seconds: d.result.seconds,
        runsOn: d.result.runsOn,
        progress: d.progress,
        names: d.result.stems.map((s) => s.name),
        cards: [...document.querySelectorAll(".stem")].map((el) => {
          const c = el.querySelector("canvas");
          const px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
          let inked = 0;
          for (let i = 3; i < px.length; i += 4) inked += px[i] > 0;
          return {
            name: el.dataset.stem,
            inked: inked / (c.width * c.height),
            download: el.querySelector("a").download,
            audio: el.querySelector("audio").src.startsWith("blob:"),
          };
        }),
      };
    });
    console.log(`${c.name}: ${shown.names.join(", ")} in ${shown.seconds.toFixed(2)} s in the page (${shown.runsOn})`);
    const steps = shown.progress.filter((p, i, a) => i === 0 || p !== a[i - 1]).length;
    check(steps >= 3, `${c.name}: the page showed progress while the worker ran (${steps} distinct values)`);
    check(
      shown.cards.length === shown.names.length &&
        shown.cards.every((k) => k.inked > 0.01 && k.audio && k.download.endsWith(`.${k.name}.wav`)),
      `${c.name}: each stem has a drawn waveform, a player and a download link`,
    );

    for (const [i, name] of shown.names.entries()) {
      // The stem's samples, and its download (a 32-bit float WAV) fetched from the blob URL.
      const [channels, wav] = await page.evaluate(async (i) => {
        const b64 = (bytes) => {
          let s = "";
          for (let k = 0; k < bytes.length; k += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(k, k + 0x8000));
          return btoa(s);
        };
        const stem = window.splitsoundDemo.result.stems[i];
        const href = document.querySelectorAll(".stem a")[i].href;
        const file = new Uint8Array(await (await fetch(href)).arrayBuffer());
        return [stem.channels.map((ch) => b64(new Uint8Array(ch.buffer, ch.byteOffset, ch.byteLength))), b64(file)];
      }, i);
      const ours = channels.map((s) => {
        const b = Buffer.from(s, "base64");
        return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
      });
      const native = decode(readFileSync(`${nativeDir}/${c.name}/mixture/${name}.wav`), "wav");
      let worst = ours.length === native.numberOfChannels ? 0 : Infinity;
      for (let ch = 0; ch < ours.length && worst < Infinity; ch++) {
        const a = ours[ch], b = native.channel(ch);
        if (a.length !== b.length) worst = Infinity;
        else for (let k = 0; k < a.length; k++) worst = Math.max(worst, Math.abs(a[k] - b[k]));
      }
      check(worst <= c.tolerance, `${c.name}/${name}: max |page - native| = ${worst.toExponential(2)} (at most ${c.tolerance})`);
      const download = decode(Buffer.from(wav, "base64"), "wav");
      check(
        download.numberOfChannels === ours.length && download.frames === ours[0].length,
        `${c.name}/${name}: the download is a WAV of the same ${ours.length} × ${ours[0].length} samples`,
      );
    }
    await page.screenshot({ path: `${outDir}/web-${c.name}.png`, fullPage: true });
  }

  // A file that is no audio: a typed error in the page, not a crash of the worker.
  await page.setInputFiles("#file", { name: "notes.mp3", mimeType: "audio/mpeg", buffer: Buffer.from("not audio") });
  await page.selectOption("#method", "builtin:hpss");
  await page.click("#go");
  await page.waitForFunction(() => window.splitsoundDemo.error || window.splitsoundDemo.result);
  const bad = await page.evaluate(() => [window.splitsoundDemo.error, document.querySelector("#status").className]);
  check(bad[0]?.code === "unrecognized_format" && bad[1] === "error", `fake audio: the page says ${JSON.stringify(bad[0])}`);
} finally {
  await browser.close();
  server.close();
}
if (failures) {
  console.error(`${failures} failures`);
  process.exit(1);
}
console.log(`web demo end to end: all passed (screenshots in ${outDir})`);
