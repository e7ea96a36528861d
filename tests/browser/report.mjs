// Opens trickle-load's HTML reports in headless Chromium and checks, from
// the DOM, what a reader relies on: no script or console errors, the
// verdicts as elements with their figures (a failing one when expected),
// the figures as tables with their rows, every chart drawn with its axis
// labels. Writes a full-page screenshot of each.
//
//   node tests/browser/report.mjs OUTPUT_DIR KIND=FILE[:fail] ...
//
// Exit code 0 when every report passed, 1 otherwise.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { pathToFileURL } from "node:url";

const [outDir, ...reports] = process.argv.slice(2);
if (!outDir || reports.length === 0) {
  console.error("usage: node report.mjs OUTPUT_DIR KIND=FILE[:fail] ...");
  process.exit(2);
}
mkdirSync(outDir, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
let failures = 0;
try {
  for (const spec of reports) {
    const [kind, rest] = spec.split("=");
    const [file, expect] = rest.split(":");
    const page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
    page.on("request", (r) => { if (!r.url().startsWith("file:")) errors.push(`fetched ${r.url()}`); });
    await page.goto(pathToFileURL(file).href);
    const seen = await page.evaluate(() => ({
      verdicts: [...document.querySelectorAll("#verdicts tr[data-check]")].map((tr) => ({
        check: tr.dataset.check,
        verdict: tr.querySelector(".verdict").textContent,
        value: tr.querySelector(".value").textContent,
        bound: tr.querySelector(".bound").textContent,
      })),
      exit: document.querySelector("#verdicts .exit")?.textContent ?? "",
      header: document.querySelector("header .what")?.textContent ?? "",
      measures: [...document.querySelectorAll("table.measures tr[data-measure]")].map((tr) => tr.dataset.measure),
      llm: [...document.querySelectorAll("table.llm tr[data-measure]")].map((tr) => tr.dataset.measure),
      ends: document.querySelectorAll("table.ends tbody tr").length,
      charts: [...document.querySelectorAll("figure.chart")].map((f) => ({
        id: f.id,
        drawn: !!f.querySelector("svg"),
        texts: [...f.querySelectorAll("svg text")].map((t) => t.textContent.trim()),
      })),
    }));
    await page.screenshot({ path: `${outDir}/report-${kind}.png`, fullPage: true });
    const problems = [...errors];
    if (!seen.header.includes("from")) problems.push(`header "${seen.header}"`);
    if (seen.verdicts.length === 0) problems.push("no verdict rows");
    for (const v of seen.verdicts) {
      if (!["PASS", "FAIL"].includes(v.verdict)) problems.push(`verdict ${JSON.stringify(v)}`);
      if (!v.value) problems.push(`no figure for ${v.check}`);
    }
    const failed = seen.verdicts.some((v) => v.verdict === "FAIL");
    if ((expect === "fail") !== failed) problems.push(`expected ${expect || "pass"}, verdicts ${JSON.stringify(seen.verdicts)}`);
    if (!seen.exit.includes(`exit code ${expect === "fail" ? 1 : 0}`)) problems.push(`exit line "${seen.exit}"`);
    for (const m of ["headers", "first_byte", "first_event", "gap", "lifetime"]) {
      if (!seen.measures.includes(m)) problems.push(`no ${m} row`);
    }
    if (kind === "llm" && seen.llm.join() !== "ttft,itl,tpot,e2e") problems.push(`llm rows ${seen.llm}`);
    if (seen.ends === 0) problems.push("no ends table rows");
    const wanted = kind === "llm" ? ["open", "events", "tokens", "ttft", "itl"] : ["open", "events", "starts-errors", "ttfb-over-time", "ttfb"];
    for (const id of wanted) {
      const chart = seen.charts.find((c) => c.id === id);
      if (!chart || !chart.drawn) { problems.push(`chart ${id} missing`); continue; }
      const axis = id === "ttfb" || id === "ttft" || id === "itl" ? "milliseconds (log scale)" : "time since the start (s)";
      if (!chart.texts.includes(axis)) problems.push(`chart ${id} lacks its axis label "${axis}"`);
      if (chart.texts.length < 6) problems.push(`chart ${id} has ${chart.texts.length} labels`);
    }
    if (problems.length) {
      failures += 1;
      console.log(`FAIL ${kind}: ${problems.join("; ")}`);
    } else {
      console.log(`PASS ${kind}: ${seen.verdicts.length} verdicts, ${seen.charts.length} charts`);
    }
    await page.close();
  }
} finally {
  await browser.close();
}
process.exit(failures ? 1 : 0);
