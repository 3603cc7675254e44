// The page's Web Worker: every bit of decoding, separation and encoding runs
// here, in splitsound's WebAssembly module, so the page stays responsive.
// Messages in:  {type: "separate", file: {name, bytes}, method, model?, options?, query?}
// Messages out: {type: "ready", version, builtins}, {type: "progress", stage, done, total},
//               {type: "done", stems: [{name, sampleRate, channels: Float32Array[], wav}], seconds, runsOn},
//               {type: "error", message, code}
import init, * as splitsound from "/pkg/splitsound.js";

const ready = init().then(() =>
  postMessage({ type: "ready", version: splitsound.version(), builtins: splitsound.builtins() }),
);

function extension(name) {
  const dot = name.lastIndexOf(".");
  return dot > 0 ? name.slice(dot + 1).toLowerCase() : undefined;
}

function separate({ file, method, model, options, query }) {
  const t0 = performance.now();
  const audio = splitsound.decode(new Uint8Array(file.bytes), extension(file.name));
  const progress = (stage, done, total) => postMessage({ type: "progress", stage, done, total });
  let stems, runsOn;
  if (method === "model") {
    const m = new splitsound.Model(
      model.manifest ?? undefined,
      model.files.map((f) => f.name),
      model.files.map((f) => new Uint8Array(f.bytes)),
      options ? JSON.stringify(options) : undefined,
    );
    try {
      runsOn = `${m.name} on ${m.runsOn}`;
      stems = m.separate(audio, progress);
    } finally {
      m.free();
    }
  } else {
    runsOn = `${method} on cpu`;
    stems = splitsound.separate(method, audio, progress);
  }
  if (query) stems = stems.select(query);
  const out = [];
  const transfer = [];
  for (const name of stems.names()) {
    const stem = stems.get(name);
    const channels = [];
    for (let c = 0; c < stem.numberOfChannels; c++) channels.push(stem.channel(c));
    const wav = splitsound.encode(stem, "wav", 32);
    out.push({ name, sampleRate: stem.sampleRate, channels, wav });
    transfer.push(wav.buffer, ...channels.map((ch) => ch.buffer));
    stem.free();
  }
  stems.free();
  audio.free();
  postMessage({ type: "done", stems: out, seconds: (performance.now() - t0) / 1000, runsOn }, transfer);
}

onmessage = async (event) => {
  await ready;
  try {
    if (event.data.type === "separate") separate(event.data);
  } catch (e) {
    postMessage({ type: "error", message: e instanceof Error ? e.message : String(e), code: e?.code ?? "internal" });
  }
};
