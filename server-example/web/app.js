// The SplitSound web UI: plain JavaScript over the v1 API. Uploads go straight
// to the store through the presigned part URLs (with per-part retries), jobs
// are polled for their stage and progress, stems are previewed with their
// waveform and downloaded through signed URLs.

const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let token = sessionStorage.getItem("splitsound-token");
let models = [];
let asset = null;
let currentJob = null;

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body, headers = {}) {
  const h = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  if (body !== undefined) h["content-type"] = "application/json";
  const r = await fetch(path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let v;
  try {
    v = JSON.parse(text);
  } catch {
    v = { error: { code: "bad_answer", message: text || r.statusText } };
  }
  if (!r.ok) {
    if (r.status === 401 && token) signOut("Your session ended; sign in again.");
    const wait = r.headers.get("retry-after");
    const msg = (v.error?.message ?? r.statusText) + (wait ? ` (try again in ${wait} s)` : "");
    throw new ApiError(r.status, v.error?.code ?? "error", msg);
  }
  return v;
}

function showError(e) {
  $("error").textContent = e ? (e.message ?? String(e)) : "";
}
function notice(text) {
  $("notice").textContent = text ?? "";
}

// ---------------------------------------------------------------------------
// Signing in, the account and buying credits

async function start() {
  const params = new URLSearchParams(location.search);
  if (params.has("checkout")) history.replaceState(null, "", "/");
  if (!token) return showSignIn();
  try {
    await refreshAccount();
  } catch (e) {
    return showSignIn();
  }
  $("signin").hidden = true;
  $("account").hidden = false;
  $("app").hidden = false;
  models = (await api("GET", "/v1/models")).models;
  $("model").replaceChildren(
    ...models.map((m) => new Option(`${m.name} (${m.stems.join(", ")})`, m.name, m.default, m.default)),
  );
  try {
    const { packs } = await api("GET", "/v1/billing/packs");
    $("buy").hidden = packs.length === 0;
    $("pack-list").replaceChildren(...packs.map(packItem));
  } catch (e) {
    if (e.code !== "billing_disabled") showError(e);
  }
  if (params.get("checkout") === "success") await awaitPurchase();
  if (params.get("checkout") === "cancel") notice("Checkout cancelled; nothing was charged.");
  await refreshLibrary();
}

async function showSignIn() {
  $("signin").hidden = false;
  $("account").hidden = true;
  $("app").hidden = true;
  const m = await api("GET", "/v1/auth/methods");
  $("dev-form").hidden = !m.dev_login;
  $("oidc-form").hidden = m.oidc_issuers.length === 0;
  if (!m.dev_login && m.oidc_issuers.length === 0) notice("No sign-in method is configured on this server.");
}

async function signedIn(session) {
  token = session.token;
  sessionStorage.setItem("splitsound-token", token);
  showError(null);
  await start();
}

function signOut(message) {
  token = null;
  sessionStorage.removeItem("splitsound-token");
  notice(message ?? "");
  showSignIn();
}

$("dev-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try {
    await signedIn(await api("POST", "/v1/auth/dev/login", { email: $("email").value }));
  } catch (e) {
    showError(e);
  }
});
$("oidc-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try {
    await signedIn(await api("POST", "/v1/auth/oauth/login", { id_token: $("id-token").value.trim() }));
  } catch (e) {
    showError(e);
  }
});
$("signout").addEventListener("click", () => signOut());

async function refreshAccount() {
  const me = await api("GET", "/v1/me");
  $("who").textContent = me.email;
  $("credits").textContent = String(me.credits);
  return me;
}

function packItem(p) {
  const li = document.createElement("li");
  const price = new Intl.NumberFormat(undefined, { style: "currency", currency: p.currency.toUpperCase() });
  li.textContent = `${p.name} — ${price.format(p.amount / 100)}`;
  const b = document.createElement("button");
  b.textContent = "Buy";
  b.dataset.pack = p.id;
  b.addEventListener("click", async () => {
    try {
      b.disabled = true;
      sessionStorage.setItem("splitsound-purchases", String(await purchases()));
      const c = await api("POST", "/v1/billing/checkout-session", { pack_id: p.id });
      location.assign(c.url);
    } catch (e) {
      b.disabled = false;
      showError(e);
    }
  });
  li.append(b);
  return li;
}
$("buy").addEventListener("click", () => {
  $("packs").hidden = !$("packs").hidden;
});

// Back from Checkout: the credits come with Stripe's webhook, usually at once.
// Counting purchase entries (not comparing clocks) tells when they are in.
const purchases = async () => (await api("GET", "/v1/me/credits")).entries.filter((e) => e.reason === "purchase").length;

async function awaitPurchase() {
  const before = Number(sessionStorage.getItem("splitsound-purchases") ?? 0);
  notice("Payment received; adding your credits…");
  for (let i = 0; i < 30; i++) {
    if ((await purchases()) > before) {
      sessionStorage.removeItem("splitsound-purchases");
      await refreshAccount();
      notice("Credits added. Thank you!");
      return;
    }
    await sleep(1000);
  }
  notice("The payment is still being confirmed; your credits will appear shortly.");
}

// ---------------------------------------------------------------------------
// Uploading: parts straight to the store, three at a time, each retried

function putPart(url, blob, onProgress) {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open("PUT", url);
    x.upload.onprogress = (e) => onProgress(e.loaded);
    x.onload = () => {
      const etag = x.getResponseHeader("etag");
      if (x.status >= 200 && x.status < 300 && etag) resolve(etag);
      else reject(new Error(`the store answered ${x.status}`));
    };
    x.onerror = () => reject(new Error("network error"));
    x.send(blob);
  });
}

async function upload(file) {
  showError(null);
  $("describe").hidden = true;
  $("job").hidden = true;
  $("upload-box").hidden = false;
  const status = (t) => {
    $("upload-status").textContent = t;
  };
  const init = await api("POST", "/v1/uploads/initialize", {
    filename: file.name,
    size: file.size,
    content_type: file.type || "application/octet-stream",
  });
  const sent = new Array(init.parts.length).fill(0);
  const show = () => {
    const frac = sent.reduce((a, b) => a + b, 0) / file.size;
    $("upload-progress").value = frac;
    $("upload-percent").textContent = `${Math.floor(frac * 100)} %`;
  };
  status(`Uploading ${init.parts.length} part(s)…`);
  const etags = new Array(init.parts.length);
  let next = 0;
  const worker = async () => {
    while (next < init.parts.length) {
      const i = next++;
      const p = init.parts[i];
      const from = (p.part_number - 1) * init.part_size;
      const blob = file.slice(from, from + p.size);
      for (let attempt = 1; ; attempt++) {
        try {
          etags[i] = await putPart(p.url, blob, (n) => {
            sent[i] = n;
            show();
          });
          sent[i] = p.size;
          show();
          break;
        } catch (e) {
          sent[i] = 0;
          show();
          if (attempt > 3) throw new Error(`part ${p.part_number} failed ${attempt} times: ${e.message}`);
          status(`Part ${p.part_number} failed (${e.message}); retrying (${attempt} of 3)…`);
          $("upload-box").dataset.retries = String(Number($("upload-box").dataset.retries ?? 0) + 1);
          await sleep(400 * 2 ** (attempt - 1));
        }
      }
    }
  };
  try {
    await Promise.all([worker(), worker(), worker()]);
  } catch (e) {
    await api("POST", `/v1/uploads/${init.upload_id}/abort`).catch(() => {});
    throw e;
  }
  status("Checking the file…");
  const parts = init.parts.map((p, i) => ({ part_number: p.part_number, etag: etags[i] }));
  const done = await api("POST", `/v1/uploads/${init.upload_id}/complete`, { parts });
  status("Uploaded.");
  chooseAsset(done.asset);
  await refreshLibrary();
}

function chooseAsset(a) {
  asset = a;
  $("describe").hidden = false;
  const mins = Math.floor(a.duration_secs / 60);
  const secs = (a.duration_secs % 60).toFixed(1).padStart(4, "0");
  $("asset-info").textContent =
    `${a.filename}: ${mins}:${secs}, ${a.sample_rate} Hz, ${a.channels} channel(s), ${a.codec}. A separation costs ${a.credits} credit(s).`;
  $("separate").textContent = `Separate (${a.credits} credit${a.credits === 1 ? "" : "s"})`;
}

$("file").addEventListener("change", () => {
  const f = $("file").files[0];
  if (f) upload(f).catch(showError);
});
for (const ev of ["dragenter", "dragover"]) {
  $("drop").addEventListener(ev, (e) => {
    e.preventDefault();
    $("drop").classList.add("over");
  });
}
$("drop").addEventListener("dragleave", () => $("drop").classList.remove("over"));
$("drop").addEventListener("drop", (e) => {
  e.preventDefault();
  $("drop").classList.remove("over");
  const f = e.dataTransfer.files[0];
  if (f) upload(f).catch(showError);
});

// ---------------------------------------------------------------------------
// Jobs: created with an idempotency key, polled until they end

const STAGES = {
  queued: "Waiting for a worker",
  downloading: "Fetching your file",
  separating: "Separating",
  encoding: "Encoding the stems",
  uploading: "Saving the stems",
  retrying: "A storage hiccup; retrying",
  done: "Done",
  cancelled: "Cancelled",
  failed: "Failed",
};

$("separate").addEventListener("click", async () => {
  if (!asset) return;
  showError(null);
  const body = { asset_id: asset.id, model: $("model").value };
  const d = $("description").value.trim();
  if (d) body.description = d;
  try {
    $("separate").disabled = true;
    const job = await api("POST", "/v1/jobs", body, { "idempotency-key": crypto.randomUUID() });
    await refreshAccount();
    await follow(job);
  } catch (e) {
    showError(e);
  } finally {
    $("separate").disabled = false;
  }
});

$("cancel").addEventListener("click", async () => {
  if (!currentJob) return;
  try {
    await api("POST", `/v1/jobs/${currentJob}/cancel`);
  } catch (e) {
    showError(e);
  }
});

function showProgress(job) {
  $("job-stage").textContent = STAGES[job.stage] ?? job.stage;
  $("job-progress").value = job.progress_percent;
  $("job-percent").textContent = `${job.progress_percent.toFixed(0)} %`;
  $("job").dataset.status = job.status;
}

async function follow(job) {
  currentJob = job.id;
  $("job").hidden = false;
  $("stems").replaceChildren();
  $("cancel").hidden = false;
  while (job.status === "queued" || job.status === "running") {
    showProgress(job);
    await sleep(400);
    if (currentJob !== job.id) return;
    job = await api("GET", `/v1/jobs/${job.id}`);
  }
  showProgress(job);
  $("cancel").hidden = true;
  await refreshAccount();
  await refreshLibrary();
  if (job.status === "succeeded") await showStems(job);
  else if (job.status === "failed") showError(new Error(`The separation failed: ${job.failure?.message ?? job.failure?.code}. Your credits were refunded.`));
  else notice("Cancelled; your credits were refunded.");
}

async function showStems(job) {
  const [preview, downloads] = await Promise.all([
    api("GET", `/v1/jobs/${job.id}/preview`),
    api("GET", `/v1/jobs/${job.id}/downloads`),
  ]);
  const cards = preview.stems.map((s) => {
    const dl = downloads.stems.find((d) => d.stem === s.stem);
    const card = document.createElement("div");
    card.className = "stem";
    card.dataset.stem = s.stem;
    const title = document.createElement("h3");
    title.textContent = s.stem;
    const canvas = document.createElement("canvas");
    canvas.width = 760;
    canvas.height = 64;
    const audio = document.createElement("audio");
    audio.controls = true;
    audio.preload = "metadata";
    audio.src = s.url;
    const a = document.createElement("a");
    a.href = dl.url;
    a.download = dl.filename;
    a.textContent = `Download ${dl.filename} (${(dl.size / 1e6).toFixed(1)} MB)`;
    card.append(title, canvas, audio, a);
    drawWaveform(s.url, canvas).catch((e) => {
      canvas.dataset.error = e.message;
    });
    return card;
  });
  $("stems").replaceChildren(...cards);
}

async function drawWaveform(url, canvas) {
  const bytes = await (await fetch(url)).arrayBuffer();
  const audio = await new OfflineAudioContext(1, 1, 44100).decodeAudioData(bytes);
  const g = canvas.getContext("2d");
  const { width, height } = canvas;
  const chans = Array.from({ length: audio.numberOfChannels }, (_, c) => audio.getChannelData(c));
  const per = Math.max(1, Math.floor(audio.length / width));
  g.clearRect(0, 0, width, height);
  g.fillStyle = "#0a66c2";
  for (let x = 0; x < width; x++) {
    let lo = 0;
    let hi = 0;
    for (const ch of chans) {
      for (let i = x * per; i < Math.min((x + 1) * per, ch.length); i++) {
        if (ch[i] < lo) lo = ch[i];
        if (ch[i] > hi) hi = ch[i];
      }
    }
    const y0 = ((1 - Math.min(1, hi)) * height) / 2;
    const y1 = ((1 - Math.max(-1, lo)) * height) / 2;
    g.fillRect(x, y0, 1, Math.max(1, y1 - y0));
  }
  canvas.dataset.drawn = "1";
  canvas.dataset.seconds = audio.duration.toFixed(3);
}

// ---------------------------------------------------------------------------
// The library

async function refreshLibrary() {
  const lib = await api("GET", "/v1/me/library?limit=50");
  const items = lib.assets.map((a) => {
    const li = document.createElement("li");
    li.dataset.asset = a.id;
    const text = document.createElement("div");
    const jobs = lib.recent_jobs.filter((j) => j.asset_id === a.id);
    const when = new Date(a.created_at).toLocaleString();
    text.innerHTML = `<strong></strong> <span class="jobs"></span>`;
    text.querySelector("strong").textContent = a.filename;
    text.querySelector(".jobs").textContent = `${a.duration_secs.toFixed(1)} s · ${when} · ${jobs.length} job(s)`;
    const actions = document.createElement("div");
    const use = document.createElement("button");
    use.textContent = "Separate again";
    use.addEventListener("click", () => chooseAsset(a));
    const last = jobs.find((j) => j.status === "succeeded");
    const open = document.createElement("button");
    open.textContent = "Stems";
    open.hidden = !last;
    open.addEventListener("click", () => last && follow(last).catch(showError));
    const del = document.createElement("button");
    del.textContent = "Delete";
    del.className = "delete";
    del.addEventListener("click", async () => {
      if (!confirm(`Delete ${a.filename} and its stems?`)) return;
      try {
        await api("DELETE", `/v1/me/library/${a.id}`);
        if (asset?.id === a.id) {
          asset = null;
          $("describe").hidden = true;
          $("job").hidden = true;
        }
        await refreshLibrary();
      } catch (e) {
        showError(e);
      }
    });
    actions.append(use, open, del);
    li.append(text, actions);
    return li;
  });
  $("library").replaceChildren(...items);
  $("library").dataset.count = String(items.length);
}

start().catch(showError);
