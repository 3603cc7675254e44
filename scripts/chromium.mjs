// How our browser tests launch Debian's chromium headless (through playwright-core): the flags
// that keep it from reaching the network or needing a sandbox or a GPU. Shared by
// examples/web/tests/e2e.mjs and server-example/web/tests/e2e.mjs.
export const chromiumOptions = {
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
  ],
};
