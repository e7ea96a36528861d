// Opens trickle's live page in headless Chromium, runs a 20-event stream
// over SSE, WebSocket and NDJSON across the server's deadline, and checks
// from the DOM that all 20 ids arrived once, in order, with the resume
// marked. Writes a screenshot per transport.
//
//   node tests/browser/page.mjs http://127.0.0.1:8080 target/browser
//
// Exit code 0 when every transport passed, 1 otherwise.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";

const [base, outDir] = process.argv.slice(2);
if (!base || !outDir) {
  console.error("usage: node page.mjs BASE_URL OUTPUT_DIR");
  process.exit(2);
}
mkdirSync(outDir, { recursive: true });
const EVENTS = 20;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-quic"],
});
let failures = 0;
try {
  for (const transport of ["sse", "ws", "ndjson"]) {
    const context = await browser.newContext({ viewport: { width: 1000, height: 900 } });
    const page = await context.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`${base}/`);
    const served = await page.textContent("#server-instance");
    await page.selectOption("#transport", transport);
    await page.fill("#chunks", String(EVENTS));
    await page.fill("#interval_ms", "150");
    await page.fill("#first_delay_ms", "0");
    await page.fill("#size", "8");
    await page.click("#start");
    await page.waitForFunction(() => document.getElementById("summary").dataset.state === "done", null, { timeout: 40_000 });
    const seen = await page.evaluate(() => ({
      ids: [...document.querySelectorAll("#events tr[data-id]")].map((tr) => Number(tr.dataset.id)),
      resumes: [...document.querySelectorAll("#events tr.resume")].map((tr) => tr.dataset.resumeAfter),
      summary: { ...document.getElementById("summary").dataset },
      integrity: document.getElementById("integrity-text").textContent,
      ttfb: document.getElementById("ttfb").textContent,
      instance: document.getElementById("instance").textContent,
    }));
    const shot = `${outDir}/page-${transport}.png`;
    await page.screenshot({ path: shot, fullPage: false });
    const expected = Array.from({ length: EVENTS }, (_, i) => i);
    const problems = [];
    if (JSON.stringify(seen.ids) !== JSON.stringify(expected)) problems.push(`ids ${JSON.stringify(seen.ids)}`);
    if (seen.resumes.length < 1) problems.push("no resume marked");
    for (const after of seen.resumes) {
      // Each resume row sits right after the event it resumed from.
      if (!seen.ids.includes(Number(after))) problems.push(`resume after unknown id ${after}`);
    }
    if (seen.summary.lost !== "0" || seen.summary.repeated !== "0") problems.push(`integrity ${seen.integrity}`);
    if (seen.integrity !== `${EVENTS} ids, in order`) problems.push(`integrity text "${seen.integrity}"`);
    if (!/^\d+ ms$/.test(seen.ttfb)) problems.push(`ttfb "${seen.ttfb}"`);
    if (seen.instance !== served) problems.push(`instance "${seen.instance}" vs served "${served}"`);
    if (errors.length) problems.push(`page errors: ${errors.join("; ")}`);
    if (problems.length) {
      failures += 1;
      console.log(`FAIL ${transport}: ${problems.join(", ")} (screenshot ${shot})`);
    } else {
      console.log(`PASS ${transport}: ids 0..${EVENTS - 1} once, in order; resumed after ${seen.resumes.join(", ")}; TTFB ${seen.ttfb}; screenshot ${shot}`);
    }
    await context.close();
  }
} finally {
  await browser.close();
}
process.exit(failures ? 1 : 0);
