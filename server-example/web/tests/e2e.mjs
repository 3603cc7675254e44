// End-to-end test of the hosted service's web UI in headless Chromium (Debian's, driven by
// playwright-core), on the embedded default (SQLite, local files, the queue table) with a worker
// in the same process. The whole journey: sign in; buy credits through a Stripe stand-in that
// plays Checkout and sends the signed webhook; upload the demo mix in parts with one part failing
// once (the page retries it); describe the sound; follow the job's progress; preview each stem
// (waveform and player) and download it; delete the upload from the library. Saves screenshots.
//   node server-example/web/tests/e2e.mjs SERVER_BINARY OUT_DIR
import { spawn } from "node:child_process";
import { createHmac, randomUUID } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { chromiumOptions } from "../../../scripts/chromium.mjs";

const [bin, outDir] = process.argv.slice(2);
if (!bin || !outDir) throw new Error("usage: e2e.mjs SERVER_BINARY OUT_DIR");
mkdirSync(outDir, { recursive: true });
const root = fileURLToPath(new URL("../../..", import.meta.url));
const demo = `${root}/examples/data/demo/mixture.flac`;
const work = mkdtempSync(join(tmpdir(), "splitsound-ui-"));
const whsec = "whsec_e2e_" + randomUUID();

let failures = 0;
const check = (ok, what) => {
  if (!ok) failures++;
  console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
};
const listen = (server) => new Promise((r) => server.listen(0, "127.0.0.1", () => r(server.address().port)));
const body = (req) =>
  new Promise((r) => {
    let b = "";
    req.on("data", (c) => (b += c));
    req.on("end", () => r(b));
  });

// A Stripe stand-in: POST /v1/checkout/sessions as Stripe answers it; its `url` is a page that
// "pays": it sends checkout.session.completed, signed as Stripe signs, then returns to success_url.
let apiBase = "";
const sessions = new Map();
const stripe = createServer(async (req, res) => {
  if (req.method === "POST" && req.url === "/v1/checkout/sessions") {
    const form = new URLSearchParams(await body(req));
    const ok = req.headers.authorization === "Bearer sk_test_e2e" && form.get("mode") === "payment";
    const id = `cs_test_${sessions.size + 1}`;
    sessions.set(id, form);
    res.writeHead(ok ? 200 : 400, { "content-type": "application/json" });
    res.end(JSON.stringify(ok ? { id, object: "checkout.session", url: `${stripeBase}/pay/${id}` } : { error: {} }));
    return;
  }
  const m = req.url.match(/^\/pay\/(cs_test_\d+)$/);
  if (req.method === "GET" && m && sessions.has(m[1])) {
    const form = sessions.get(m[1]);
    const event = JSON.stringify({
      id: `evt_${randomUUID()}`,
      object: "event",
      type: "checkout.session.completed",
      created: Math.floor(Date.now() / 1000),
      data: {
        object: {
          id: m[1],
          object: "checkout.session",
          client_reference_id: form.get("client_reference_id"),
          payment_status: "paid",
          amount_total: Number(form.get("line_items[0][price_data][unit_amount]")),
          currency: form.get("line_items[0][price_data][currency]"),
        },
      },
    });
    const t = Math.floor(Date.now() / 1000);
    const sig = createHmac("sha256", whsec).update(`${t}.${event}`).digest("hex");
    const r = await fetch(`${apiBase}/v1/billing/webhooks/stripe`, {
      method: "POST",
      headers: { "content-type": "application/json", "stripe-signature": `t=${t},v1=${sig}` },
      body: event,
    });
    check(r.status === 200, `the signed webhook is accepted (${r.status})`);
    res.writeHead(303, { location: form.get("success_url") });
    res.end();
    return;
  }
  res.writeHead(404);
  res.end();
});
const stripeBase = `http://127.0.0.1:${await listen(stripe)}`;

// The server: embedded default, dev sign-in, small parts so the demo goes up in several.
const probe = createServer();
const port = await listen(probe); // a free port for the server
await new Promise((r) => probe.close(r));
const config = {
  listen: `127.0.0.1:${port}`,
  data_dir: join(work, "data"),
  auth: { dev_login: true },
  limits: { part_size: 256 * 1024 },
  worker: { poll_secs: 1 },
  billing: { stripe_secret_key: "sk_test_e2e", webhook_secret: whsec, api_base: stripeBase },
};
writeFileSync(join(work, "config.json"), JSON.stringify(config));
apiBase = `http://127.0.0.1:${port}`;
let server;
const browser = await chromium.launch(chromiumOptions);

try {
  server = spawn(bin, ["--config", join(work, "config.json"), "all"], {
    env: { ...process.env, RUST_LOG: "warn" },
    stdio: ["ignore", "inherit", "inherit"],
  });
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${apiBase}/health`)).ok) break;
    } catch {}
    if (i > 200) throw new Error("the server did not start");
    await new Promise((r) => setTimeout(r, 100));
  }

  const page = await browser.newPage({ viewport: { width: 900, height: 1500 }, acceptDownloads: true });
  page.on("pageerror", (e) => check(false, `no uncaught error in the page: ${e.message}`));
  page.on("console", (m) => m.type() === "error" && console.log(`page console: ${m.text()}`));
  page.on("dialog", (d) => d.accept());
  const text = (sel) => page.locator(sel).textContent();

  // Sign in.
  await page.goto(`${apiBase}/`);
  await page.waitForSelector("#dev-form:not([hidden])");
  await page.fill("#email", "e2e@example.com");
  await page.click("#dev-form button");
  await page.waitForSelector("#app:not([hidden])");
  check((await text("#who")) === "e2e@example.com", "signed in, the address is shown");
  check((await text("#credits")) === "10", "the sign-up credits are shown");
  await page.screenshot({ path: `${outDir}/1-signed-in.png` });

  // Buy credits: Checkout (the stand-in) and back; the balance grows by the pack.
  await page.click("#buy");
  await page.click('#pack-list button[data-pack="starter"]');
  await page.waitForURL(`${apiBase}/`);
  await page.waitForFunction(() => document.querySelector("#notice").textContent.startsWith("Credits added"));
  check((await text("#credits")) === "30", `the starter pack's 20 credits arrived (${await text("#credits")})`);
  const sent = [...sessions.values()][0];
  check(sent?.get("customer_email") === "e2e@example.com", "Checkout got the buyer's address");

  // Upload, with the second part's first PUT failing: the page retries it.
  let failedOnce = false;
  await page.route("**/storage/o/**", (route) => {
    const u = new URL(route.request().url());
    if (route.request().method() === "PUT" && (u.searchParams.get("X-Part") ?? u.searchParams.get("partNumber")) === "2" && !failedOnce) {
      failedOnce = true;
      return route.abort("connectionreset");
    }
    return route.continue();
  });
  await page.setInputFiles("#file", demo);
  await page.waitForSelector("#describe:not([hidden])", { timeout: 60_000 });
  check(failedOnce, "a part's PUT failed once");
  check((await page.locator("#upload-box").getAttribute("data-retries")) === "1", "and the page retried it");
  check((await page.locator("#upload-progress").evaluate((p) => p.value)) === 1, "the upload bar reached 100 %");
  check((await text("#asset-info")).includes("mixture.flac: 0:"), `the asset is described: ${await text("#asset-info")}`);
  await page.unroute("**/storage/o/**");

  // Describe the sound, separate, follow the progress.
  await page.evaluate(() => {
    window.seen = [];
    new MutationObserver(() => {
      window.seen.push([document.querySelector("#job-stage").textContent, document.querySelector("#job-progress").value]);
    }).observe(document.querySelector("#job"), { subtree: true, childList: true, characterData: true, attributes: true });
  });
  await page.selectOption("#model", "builtin:hpss");
  await page.fill("#description", "the drums");
  await page.click("#separate");
  await page.waitForSelector('#job[data-status="succeeded"]', { timeout: 120_000 });
  const seen = await page.evaluate(() => window.seen);
  const values = seen.map((s) => s[1]);
  check(values.length > 0 && values.every((v, i) => i === 0 || v >= values[i - 1]), `progress only grew: ${values.join(" → ")}`);
  check((await text("#job-stage")) === "Done" && (await text("#job-percent")) === "100 %", "the job shows Done, 100 %");
  check((await text("#credits")) === "29", `the job's credit was taken (${await text("#credits")})`);

  // Each stem: a drawn waveform as long as the mix, a player, a download.
  await page.waitForSelector(".stem canvas[data-drawn]", { timeout: 30_000 });
  const stems = await page.locator(".stem").evaluateAll((cards) =>
    cards.map((c) => ({
      stem: c.dataset.stem,
      seconds: Number(c.querySelector("canvas").dataset.seconds),
      src: c.querySelector("audio").src,
      file: c.querySelector("a").getAttribute("download"),
    })),
  );
  const names = stems.map((s) => s.stem).sort().join(",");
  check(names === "no_percussive,percussive", `"the drums" gave the percussive stem and the rest: ${names}`);
  const assetSecs = Number((await text("#asset-info")).match(/0:(\d+\.\d)/)[1]);
  for (const s of stems) {
    check(Math.abs(s.seconds - assetSecs) < 0.1, `${s.stem}: the waveform covers ${s.seconds} s`);
    const duration = await page
      .locator(`.stem[data-stem="${s.stem}"] audio`)
      .evaluate((a) => new Promise((r) => (a.readyState >= 1 ? r(a.duration) : (a.onloadedmetadata = () => r(a.duration)))));
    check(Math.abs(duration - assetSecs) < 0.1, `${s.stem}: the player loads it (${duration.toFixed(2)} s)`);
    const [download] = await Promise.all([page.waitForEvent("download"), page.click(`.stem[data-stem="${s.stem}"] a`)]);
    const path = join(work, download.suggestedFilename());
    await download.saveAs(path);
    check(download.suggestedFilename() === `mixture - ${s.stem}.wav`, `downloaded as ${download.suggestedFilename()}`);
    const wav = readFileSync(path);
    check(wav.subarray(0, 4).toString() === "RIFF" && statSync(path).size > 100_000, `a WAV of ${wav.length} bytes`);
  }
  await page.screenshot({ path: `${outDir}/2-stems.png`, fullPage: true });

  // The library: the upload is there; delete it (and its stems).
  check((await page.locator("#library").getAttribute("data-count")) === "1", "the library lists the upload");
  await page.click("#library button.delete");
  await page.waitForSelector('#library[data-count="0"]', { state: "attached" });
  check(true, "deleted from the library");
  await page.screenshot({ path: `${outDir}/3-library-empty.png`, fullPage: true });

  // Signing out forgets the session.
  await page.click("#signout");
  await page.waitForSelector("#signin:not([hidden])");
  check(true, "signed out");
} catch (e) {
  check(false, `the journey: ${e.stack ?? e}`);
} finally {
  await browser.close();
  server?.kill("SIGTERM");
  stripe.close();
  rmSync(work, { recursive: true, force: true });
}
console.log(failures ? `${failures} check(s) failed` : "all checks passed");
process.exit(failures ? 1 : 0);
