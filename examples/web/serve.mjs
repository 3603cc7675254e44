// A tiny static server for the demo page (Node's standard library only):
//   node examples/web/serve.mjs [--port 8080]   then open http://127.0.0.1:8080/
// Serves the page (examples/web), the WebAssembly package (wasm/pkg, built by
// scripts/build-wasm.sh) under /pkg/, the demo mix under /demo/, and the small
// random-weight test models (core/tests/data/neural) under /models/.
import { createServer } from "node:http";
import { createReadStream, statSync } from "node:fs";
import { extname, join, normalize, sep } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../..", import.meta.url));
const mounts = [
  ["/pkg/", join(root, "wasm/pkg")],
  ["/demo/", join(root, "examples/data/demo")],
  ["/models/", join(root, "core/tests/data/neural")],
  ["/", join(root, "examples/web")],
];
const types = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".wasm": "application/wasm",
  ".onnx": "application/octet-stream",
  ".flac": "audio/flac",
  ".wav": "audio/wav",
  ".png": "image/png",
  ".ts": "text/plain; charset=utf-8",
};

/// The file a URL path names, or null when it lies outside every mount.
export function resolve(urlPath) {
  let path;
  try {
    path = decodeURIComponent(urlPath.split("?")[0]);
  } catch {
    return null;
  }
  if (path.endsWith("/")) path += "index.html";
  for (const [prefix, dir] of mounts) {
    if (!path.startsWith(prefix)) continue;
    const file = normalize(join(dir, path.slice(prefix.length)));
    return file === dir || file.startsWith(dir + sep) ? file : null;
  }
  return null;
}

export function serve(port = 8080, host = "127.0.0.1") {
  const server = createServer((req, res) => {
    const file = resolve(req.url ?? "/");
    let size = -1;
    try {
      if (file && statSync(file).isFile()) size = statSync(file).size;
    } catch {}
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { Allow: "GET, HEAD" }).end();
      return;
    }
    if (size < 0) {
      res.writeHead(404, { "Content-Type": "text/plain" }).end("not found\n");
      return;
    }
    res.writeHead(200, {
      "Content-Type": types[extname(file)] ?? "application/octet-stream",
      "Content-Length": size,
      "Cache-Control": "no-store",
      "X-Content-Type-Options": "nosniff",
    });
    if (req.method === "HEAD") res.end();
    else createReadStream(file).pipe(res);
  });
  return new Promise((ok, fail) => {
    server.once("error", fail);
    server.listen(port, host, () => ok(server));
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf("--port");
  const port = i > 0 ? Number(process.argv[i + 1]) : 8080;
  const server = await serve(port);
  console.log(`splitsound web demo on http://127.0.0.1:${server.address().port}/ (Ctrl-C stops it)`);
}
