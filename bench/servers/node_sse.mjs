// Node.js http SSE with no framework, the same events as trickle.
//   node node_sse.mjs 8093
import http from "node:http";

const port = Number(process.argv[2] || 8093);
http.createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  if (url.pathname !== "/sse") { res.writeHead(404).end(); return; }
  const chunks = Number(url.searchParams.get("chunks") ?? 10);
  const interval = Number(url.searchParams.get("interval_ms") ?? 1000);
  const payload = "x".repeat(Number(url.searchParams.get("size") ?? 0));
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  res.write("retry: 1000\n\n");
  let id = 0;
  let due = performance.now();
  let timer = null;
  const heartbeat = setInterval(() => res.write(": heartbeat\n\n"), 15000);
  const next = () => {
    if (id >= chunks) {
      clearInterval(heartbeat);
      res.end("event: end\ndata: {}\n\n");
      return;
    }
    res.write(`id: ${id}\nevent: chunk\ndata: ${JSON.stringify({ id, payload })}\n\n`);
    id += 1;
    due += interval;
    timer = setTimeout(next, Math.max(0, due - performance.now()));
  };
  next();
  req.on("close", () => { clearTimeout(timer); clearInterval(heartbeat); });
}).listen(port, "127.0.0.1");
