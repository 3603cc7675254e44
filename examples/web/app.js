// The page: picks a file, a method and an optional description, hands the work
// to the worker (worker.js), and shows each stem with its waveform, a player
// and a download link. window.splitsoundDemo exposes the last result to tests.
const $ = (id) => document.getElementById(id);
const state = { file: null, worker: null, busy: false, urls: [] };
const demo = (window.splitsoundDemo = { ready: false, result: null, progress: [], error: null });
const testModels = [{ label: "demucs CI test model (random weights)", manifest: "/models/demucs/ci.json", files: ["/models/demucs/ci.onnx"] }];

function status(text, error = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", error);
}

function startWorker() {
  state.worker?.terminate();
  state.worker = new Worker("worker.js", { type: "module" });
  state.worker.onmessage = ({ data }) => handlers[data.type]?.(data);
  state.worker.onerror = (e) => finish(`The worker failed: ${e.message}`, true);
}

const handlers = {
  ready({ version, builtins }) {
    $("version").textContent = `splitsound ${version}.`;
    if (!$("method").options.length) {
      for (const b of builtins) $("method").add(new Option(b.replace("builtin:", "built-in: "), b));
      testModels.forEach((m, i) => $("method").add(new Option(m.label, `test:${i}`)));
      $("method").add(new Option("a model package of yours…", "model"));
    }
    demo.ready = true;
    status(state.file ? "Ready." : "Ready: drop a file.");
    refresh();
  },
  progress({ stage, done, total }) {
    const p = total ? done / total : 0;
    $("progress").value = p;
    demo.progress.push(p);
    status(`${stage}: ${Math.round(100 * p)} %`);
  },
  done({ stems, seconds, runsOn }) {
    showStems(stems);
    demo.result = { stems, seconds, runsOn };
    $("progress").value = 1;
    finish(`${stems.length} stems in ${seconds.toFixed(1)} s (${runsOn}).`);
  },
  error({ message, code }) {
    demo.error = { message, code };
    finish(`${message} [${code}]`, true);
  },
};

function finish(text, error = false) {
  state.busy = false;
  status(text, error);
  refresh();
}

function refresh() {
  $("modelrow").hidden = $("method").value !== "model";
  $("go").disabled = !demo.ready || state.busy || !state.file;
  $("stop").hidden = !state.busy;
}

async function readFile(f) {
  return { name: f.name, bytes: await f.arrayBuffer() };
}

async function fetchFile(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return { name: url.split("/").pop(), bytes: await r.arrayBuffer() };
}

async function modelRequest() {
  const method = $("method").value;
  if (method.startsWith("test:")) {
    const m = testModels[Number(method.slice(5))];
    const manifest = await (await fetch(m.manifest)).text();
    return { method: "model", model: { manifest, files: await Promise.all(m.files.map(fetchFile)) } };
  }
  if (method !== "model") return { method };
  const picked = [...$("modelfiles").files];
  if (!picked.length) throw new Error("Choose the model package's files first.");
  const json = picked.find((f) => f.name.endsWith(".json"));
  const files = await Promise.all(picked.filter((f) => f !== json).map(readFile));
  return { method: "model", model: { manifest: json ? await json.text() : null, files } };
}

async function go() {
  if (state.busy || !state.file) return;
  state.busy = true;
  demo.result = null;
  demo.error = null;
  demo.progress = [];
  $("progress").value = 0;
  clearStems();
  refresh();
  status("Starting…");
  try {
    const request = await modelRequest();
    const file = { name: state.file.name, bytes: state.file.bytes.slice(0) };
    const query = $("query").value.trim() || undefined;
    const transfer = [file.bytes, ...(request.model?.files.map((f) => f.bytes) ?? [])];
    state.worker.postMessage({ type: "separate", file, query, ...request }, transfer);
  } catch (e) {
    finish(e.message, true);
  }
}

function clearStems() {
  state.urls.forEach((u) => URL.revokeObjectURL(u));
  state.urls = [];
  $("stems").replaceChildren();
}

function showStems(stems) {
  clearStems();
  const base = state.file.name.replace(/\.[^.]*$/, "");
  for (const s of stems) {
    const url = URL.createObjectURL(new Blob([s.wav], { type: "audio/wav" }));
    state.urls.push(url);
    const div = document.createElement("div");
    div.className = "stem";
    div.dataset.stem = s.name;
    const seconds = s.channels[0].length / s.sampleRate;
    div.innerHTML = `<h2><span></span><small>${seconds.toFixed(1)} s · ${s.channels.length} ch · <a download>download WAV</a></small></h2><canvas></canvas><audio controls preload="metadata"></audio>`;
    div.querySelector("span").textContent = s.name;
    div.querySelector("a").href = url;
    div.querySelector("a").download = `${base}.${s.name}.wav`;
    div.querySelector("audio").src = url;
    $("stems").append(div);
    drawWaveform(div.querySelector("canvas"), s.channels);
  }
}

function drawWaveform(canvas, channels) {
  const w = (canvas.width = canvas.clientWidth * devicePixelRatio || 800);
  const h = (canvas.height = 72 * devicePixelRatio);
  const g = canvas.getContext("2d");
  g.fillStyle = "#2a6df4";
  const n = channels[0].length;
  const per = Math.max(1, Math.floor(n / w));
  for (let x = 0; x < w; x++) {
    let lo = 0, hi = 0;
    for (const ch of channels) {
      for (let i = x * per, end = Math.min(n, i + per); i < end; i++) {
        const v = ch[i];
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
    }
    const top = (0.5 - Math.min(1, hi) / 2) * h;
    const bottom = (0.5 - Math.max(-1, lo) / 2) * h;
    g.fillRect(x, top, 1, Math.max(1, bottom - top));
  }
}

async function setFile(f) {
  state.file = f;
  $("filename").textContent = `${f.name} (${(f.bytes.byteLength / 1e6).toFixed(1)} MB)`;
  if (demo.ready) status("Ready.");
  refresh();
}

$("file").addEventListener("change", async () => $("file").files[0] && setFile(await readFile($("file").files[0])));
$("demo").addEventListener("click", async () => setFile(await fetchFile("/demo/mixture.flac")));
$("method").addEventListener("change", refresh);
$("go").addEventListener("click", go);
$("stop").addEventListener("click", () => {
  demo.ready = false;
  startWorker();
  finish("Stopped; restarting the worker…");
});
const drop = $("drop");
drop.addEventListener("dragover", (e) => (e.preventDefault(), drop.classList.add("over")));
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", async (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  const f = e.dataTransfer.files[0];
  if (f) setFile(await readFile(f));
});
startWorker();
