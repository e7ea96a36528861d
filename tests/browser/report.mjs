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
    // A laptop's screen: every table fits it whole (nothing cut off).
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
    page.on("request", (r) => { if (!r.url().startsWith("file:")) errors.push(`fetched ${r.url()}`); });
    await page.goto(pathToFileURL(file).href);
    if (kind === "capacity") {
      const cap = await page.evaluate(() => ({
        answer: document.querySelector("#verdicts tr[data-check=capacity] .verdict")?.textContent ?? "",
        exit: document.querySelector("#verdicts .exit")?.textContent ?? "",
        header: document.querySelector("header .what")?.textContent ?? "",
        levels: [...document.querySelectorAll("table.levels tr[data-streams]")].map((tr) => tr.querySelector(".verdict").textContent),
        bounds: [...document.querySelectorAll("table.levels tr[data-streams]")].map((tr) => tr.children[5].textContent),
        throughput: !!document.querySelector("figure#throughput svg"),
        // The levels table, verdict column included, within the screen.
        tableRight: document.querySelector("table.levels")?.getBoundingClientRect().right ?? 0,
        verdictRight: Math.max(0, ...[...document.querySelectorAll("table.levels td.verdict")].map((td) => td.getBoundingClientRect().right)),
        keys: [...document.querySelectorAll("figure.chart")].map((f) => f.querySelectorAll("ul.key li").length),
        chartTexts: [...document.querySelectorAll("svg text")].map((t) => t.textContent.trim()),
      }));
      await page.screenshot({ path: `${outDir}/report-${kind}.png`, fullPage: true });
      const problems = [...errors];
      if (!["FOUND", "NOT FOUND", "INCONCLUSIVE", "UNRESOLVED"].includes(cap.answer)) problems.push(`answer "${cap.answer}"`);
      if (expect && cap.answer !== expect) problems.push(`expected the answer ${expect}, got "${cap.answer}"`);
      if (!/exit code \d/.test(cap.exit)) problems.push(`exit line "${cap.exit}"`);
      if (!cap.header.includes(" at ")) problems.push(`header "${cap.header}"`);
      if (cap.levels.length === 0) problems.push("no level rows");
      for (const v of cap.levels) if (!/^(PASS|FAIL|INCONCLUSIVE|UNRESOLVED)/.test(v)) problems.push(`level verdict "${v}"`);
      if (cap.chartTexts.length < 4) problems.push(`chart has ${cap.chartTexts.length} labels`);
      // Each level's judged p99 with its bounds beside it, and the
      // throughput chart.
      if (!cap.bounds.every((b) => /\[([0-9.?]+|open)\.\.([0-9.?]+|open)\]/.test(b))) problems.push(`level bounds ${JSON.stringify(cap.bounds)}`);
      if (cap.tableRight > 1280 || cap.verdictRight > 1280) problems.push(`the levels table runs past 1280 px (${cap.tableRight}, verdicts to ${cap.verdictRight})`);
      if (!cap.keys.every((n) => n >= 1)) problems.push(`a chart without its key: ${cap.keys}`);
      if (!cap.throughput) problems.push("no throughput chart");
      failures += problems.length ? 1 : 0;
      console.log(problems.length ? `FAIL ${kind}: ${problems.join("; ")}` : `PASS ${kind}: ${cap.levels.length} levels, ${cap.answer}`);
      await page.close();
      continue;
    }
    const seen = await page.evaluate(() => ({
      verdicts: [...document.querySelectorAll("#verdicts tr[data-check]")].map((tr) => ({
        check: tr.dataset.check,
        verdict: tr.querySelector(".verdict").textContent,
        value: tr.querySelector(".value").textContent,
        bound: tr.querySelector(".bound").textContent,
        bounds: tr.querySelector(".bounds").textContent,
      })),
      exit: document.querySelector("#verdicts .exit")?.textContent ?? "",
      header: document.querySelector("header .what")?.textContent ?? "",
      measures: [...document.querySelectorAll("table.measures tr[data-measure]")].map((tr) => tr.dataset.measure),
      llm: [...document.querySelectorAll("table.llm tr[data-measure]")].map((tr) => tr.dataset.measure),
      ends: document.querySelectorAll("table.ends tbody tr").length,
      // Charts before the long tables.
      chartsFirst: (() => {
        const chart = document.querySelector("figure.chart");
        const ends = document.querySelector("table.ends");
        return !!chart && !!ends && !!(chart.compareDocumentPosition(ends) & Node.DOCUMENT_POSITION_FOLLOWING);
      })(),
      charts: [...document.querySelectorAll("figure.chart")].map((f) => ({
        id: f.id,
        drawn: !!f.querySelector("svg"),
        // The key is HTML beside the chart, never drawn over the data.
        key: [...f.querySelectorAll("ul.key li")].map((li) => li.textContent.trim()),
        texts: [...f.querySelectorAll("svg text")].map((t) => t.textContent.trim()),
        // Tick labels: numbers (or percentiles) that share a baseline (the
        // x axis) or a right edge (the y axis).
        ticks: (() => {
          const boxes = [...f.querySelectorAll("svg text")]
            .filter((t) => /^-?[0-9][0-9.,]*%?$/.test(t.textContent.trim()))
            .map((t) => { const b = t.getBBox(); return { bottom: Math.round(b.y + b.height), right: Math.round(b.x + b.width) }; });
          const most = (key) => Math.max(0, ...Object.values(boxes.reduce((n, b) => ({ ...n, [b[key]]: (n[b[key]] || 0) + 1 }), {})));
          return { x: most("bottom"), y: most("right") };
        })(),
      })),
    }));
    await page.screenshot({ path: `${outDir}/report-${kind}.png`, fullPage: true });
    const problems = [...errors];
    if (!seen.header.includes("from")) problems.push(`header "${seen.header}"`);
    if (seen.verdicts.length === 0) problems.push("no verdict rows");
    for (const v of seen.verdicts) {
      if (!["PASS", "FAIL", "UNRESOLVED"].includes(v.verdict)) problems.push(`verdict ${JSON.stringify(v)}`);
      if (!v.value) problems.push(`no figure for ${v.check}`);
      // A percentile's bounds beside its figure (a count has none).
      if (/-p99$/.test(v.check) && !/\.\..*samples\)/.test(v.bounds)) problems.push(`no bounds for ${v.check}: ${JSON.stringify(v)}`);
    }
    // The run's verdict: any FAIL fails, else any UNRESOLVED, else PASS;
    // the exit code says the same (1, 4, 0).
    const overall = seen.verdicts.some((v) => v.verdict === "FAIL") ? "fail"
      : seen.verdicts.some((v) => v.verdict === "UNRESOLVED") ? "unresolved" : "pass";
    if ((expect || "pass") !== overall) problems.push(`expected ${expect || "pass"}, verdicts ${JSON.stringify(seen.verdicts)}`);
    const code = { pass: 0, fail: 1, unresolved: 4 }[expect || "pass"];
    if (!seen.exit.includes(`exit code ${code}`)) problems.push(`exit line "${seen.exit}"`);
    for (const m of ["headers", "first_byte", "first_event", "gap", "lifetime"]) {
      if (!seen.measures.includes(m)) problems.push(`no ${m} row`);
    }
    if (kind === "llm" && seen.llm.join() !== "ttft,itl,tpot,e2e") problems.push(`llm rows ${seen.llm}`);
    if (seen.ends === 0) problems.push("no ends table rows");
    const wanted = kind === "llm" ? ["open", "events", "tokens", "llm-percentiles"] : ["open", "events", "starts-errors", "ttfb-over-time", "percentiles"];
    for (const id of wanted) {
      const chart = seen.charts.find((c) => c.id === id);
      if (!chart || !chart.drawn) { problems.push(`chart ${id} missing`); continue; }
      const axes = /percentiles$/.test(id) ? ["percentile", "milliseconds (log scale)"] : ["time since the start (s)"];
      for (const axis of axes) if (!chart.texts.includes(axis)) problems.push(`chart ${id} lacks its axis label "${axis}"`);
      if (/percentiles$/.test(id) && !chart.texts.includes("99%")) problems.push(`chart ${id} has no 99% tick: ${chart.texts}`);
    }
    // Every chart drawn has at least three labelled ticks on each axis,
    // and a key.
    for (const chart of seen.charts.filter((c) => c.drawn)) {
      if (chart.ticks.x < 3 || chart.ticks.y < 3) problems.push(`chart ${chart.id} ticks x ${chart.ticks.x}, y ${chart.ticks.y}: ${chart.texts}`);
      if (chart.key.length === 0) problems.push(`chart ${chart.id} has no key`);
    }
    // A distribution's y axis says what it counts.
    const gaps = seen.charts.find((c) => c.id === "gaps");
    if (gaps && !gaps.texts.includes("gaps")) problems.push(`the gap histogram's y axis: ${gaps.texts}`);
    if (!seen.chartsFirst) problems.push("the charts come after the long tables");
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
