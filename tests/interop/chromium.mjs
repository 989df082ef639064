// The one way the browser tests and the screenshot script start Chromium: Debian's
// /usr/bin/chromium driven by playwright-core, headless. The machine has no network: without
// these flags Chromium hangs on refused connections to Google's services.
export const CHROMIUM = "/usr/bin/chromium";
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

// playwright-core's `chromium`, or exit 3 with what to run when the package is missing.
export async function playwrightChromium() {
  try {
    return (await import("playwright-core")).chromium;
  } catch {
    console.error("FAIL: node package playwright-core missing: run scripts/install-test-deps.sh");
    process.exit(3);
  }
}

// A launched headless browser, with `extraArgs` after the usual ones.
export async function launchChromium(extraArgs = []) {
  const chromium = await playwrightChromium();
  return chromium.launch({ executablePath: CHROMIUM, args: [...CHROMIUM_ARGS, ...extraArgs] });
}
