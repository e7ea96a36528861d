#!/usr/bin/env python3
"""Builds the Grafana dashboards from this one description.

    dashboards/build.py            # rewrites trickle.json and trickle-load.json

Every query uses the metric names of telemetry/src/metrics.rs (trickle) and
loadtest/src/infra/metrics.rs (trickle-load); the dashboards test
(tests/api/dashboards.rs) runs each query against a real Prometheus.
Rates use $__rate_interval; quantiles are histogram_quantile over
sum by (le) of rates.
"""

import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
DS = {"type": "prometheus", "uid": "${datasource}"}


def sel(*extra):
    """The label selector of trickle's series, with the dashboard variables."""
    parts = ['job=~"$job"', 'instance=~"$instance"'] + list(extra)
    return "{" + ", ".join(parts) + "}"


T = sel('transport=~"$transport"')
J = sel()


def rate(metric, selector, by):
    return f"sum by ({by}) (rate({metric}{selector}[$__rate_interval]))"


def quantile(q, metric, selector, by="le"):
    return f"histogram_quantile({q}, sum by ({by}) (rate({metric}_bucket{selector}[$__rate_interval])))"


class Board:
    def __init__(self):
        self.panels = []
        self.y = 0
        self.x = 0
        self.next_id = 1

    def row(self, title):
        if self.x:
            self.y += 8
            self.x = 0
        self.panels.append({"type": "row", "title": title, "id": self.next_id, "collapsed": False,
                            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}})
        self.next_id += 1
        self.y += 1

    def panel(self, title, description, unit, targets, kind="timeseries", width=12):
        if self.x + width > 24:
            self.y += 8
            self.x = 0
        panel = {
            "type": kind,
            "title": title,
            "description": description,
            "id": self.next_id,
            "datasource": DS,
            "gridPos": {"h": 8, "w": width, "x": self.x, "y": self.y},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
            "targets": [
                dict({"datasource": DS, "expr": expr, "legendFormat": legend, "refId": chr(65 + i)},
                     **({"format": "heatmap"} if kind == "heatmap" else {}))
                for i, (expr, legend) in enumerate(targets)
            ],
        }
        if kind == "heatmap":
            panel["options"] = {"calculate": False, "yAxis": {"unit": unit}, "cellGap": 1}
        self.panels.append(panel)
        self.next_id += 1
        self.x += width


def dashboard(uid, title, description, variables, board):
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["trickle", "streaming"],
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": variables},
        "panels": board.panels,
    }


def datasource_var():
    return {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
            "current": {}, "hide": 0}


def query_var(name, label, query, include_all=True):
    var = {"name": name, "label": label, "type": "query", "datasource": DS, "query": {"query": query, "refId": name},
           "definition": query, "refresh": 2, "sort": 1, "multi": include_all, "includeAll": include_all, "current": {}}
    if include_all:
        var["allValue"] = ".*"
    return var


def trickle():
    b = Board()
    b.row("Streams")
    b.panel("Open streams by transport", "Streams open right now (trickle_streams_active), summed over the selected instances.",
            "short", [(f"sum by (transport) (trickle_streams_active{T})", "{{transport}}")])
    b.panel("Open streams per instance, against the limit",
            "Open streams on each instance and its --max-streams limit (trickle_streams_max); on Cloud Run, compare with the service's container concurrency.",
            "short", [(f"sum by (instance) (trickle_streams_active{J})", "{{instance}} open"),
                      (f"max by (instance) (trickle_streams_max{J})", "{{instance}} limit")])
    b.panel("Stream starts", "Streams admitted per second, fresh or resumed after a Last-Event-ID.",
            "ops", [(rate("trickle_streams_started_total", T, "transport, resumed"), "{{transport}} resumed={{resumed}}")])
    b.panel("Stream ends by outcome",
            "Streams ended per second: completed, client_gone, deadline (ended before the platform timeout), shutdown (SIGTERM), error.",
            "ops", [(rate("trickle_streams_ended_total", T, "outcome"), "{{outcome}}")])
    b.row("Latency")
    b.panel("Time to first byte (server side)",
            "From the request reaching the handler to the first chunk handed to the writer (trickle_stream_ttfb_seconds).",
            "s", [(quantile(q, "trickle_stream_ttfb_seconds", T), f"p{int(q * 100)}") for q in (0.5, 0.9, 0.99)])
    b.panel("TTFB distribution", "Heatmap of server-side TTFB per bucket.", "s",
            [(f"sum by (le) (rate(trickle_stream_ttfb_seconds_bucket{T}[$__rate_interval]))", "{{le}}")], kind="heatmap")
    b.panel("Chunk gap p99", "99th percentile of the time between consecutive chunks handed to the writer.", "s",
            [(quantile(0.99, "trickle_stream_chunk_gap_seconds", T), "p99")])
    b.panel("Stream duration by outcome", "Median and 99th percentile of whole-stream lifetime, per outcome.", "s",
            [(quantile(0.5, "trickle_stream_duration_seconds", T, "le, outcome"), "{{outcome}} p50"),
             (quantile(0.99, "trickle_stream_duration_seconds", T, "le, outcome"), "{{outcome}} p99")])
    b.row("Throughput")
    b.panel("Chunks per second", "Chunks (events) handed to the writer per second.", "ops",
            [(rate("trickle_stream_chunks_total", T, "transport"), "{{transport}}")])
    b.panel("Stream bytes per second", "Bytes handed to the writer per second, framing and heartbeats included.", "Bps",
            [(rate("trickle_stream_bytes_total", T, "transport"), "{{transport}}")])
    b.row("Rejections and HTTP")
    b.panel("Rejected streams", "Stream requests not admitted: capacity (429), draining (503), invalid (400).", "ops",
            [(rate("trickle_streams_rejected_total", J, "reason"), "{{reason}}")])
    b.panel("HTTP responses by status", "Responses per second by route and status, counted when the whole response (body included) is done (OpenTelemetry's http.server.request.duration).",
            "reqps", [(rate("http_server_request_duration_seconds_count", J, "http_route, http_response_status_code"),
                       "{{http_route}} {{http_response_status_code}}")])
    b.panel("HTTP requests in flight", "http.server.active_requests: requests whose response (body included) is not done yet; a stream counts for its whole life.",
            "short", [(f"sum by (http_request_method) (http_server_active_requests{J})", "{{http_request_method}}")])
    b.panel("HTTP response time by route", "http.server.request.duration p50 and p99 per route, body included: for a stream, its whole life (buckets to 3600 s).",
            "s", [(quantile(0.5, "http_server_request_duration_seconds", J, "le, http_route"), "{{http_route}} p50"),
                  (quantile(0.99, "http_server_request_duration_seconds", J, "le, http_route"), "{{http_route}} p99")])
    b.row("LLM (simulated model, OpenAI API)")
    b.panel("Time to first token", "gen_ai.server.time_to_first_token: from the request to the first output token, p50 and p99, by operation (chat, text_completion).",
            "s", [(quantile(0.5, "gen_ai_server_time_to_first_token_seconds", J, "le, gen_ai_operation_name"), "{{gen_ai_operation_name}} p50"),
                  (quantile(0.99, "gen_ai_server_time_to_first_token_seconds", J, "le, gen_ai_operation_name"), "{{gen_ai_operation_name}} p99")], width=8)
    b.panel("Time per output token", "gen_ai.server.time_per_output_token: (last token - first token) / (output tokens - 1), p50 and p99.",
            "s", [(quantile(0.5, "gen_ai_server_time_per_output_token_seconds", J, "le, gen_ai_operation_name"), "{{gen_ai_operation_name}} p50"),
                  (quantile(0.99, "gen_ai_server_time_per_output_token_seconds", J, "le, gen_ai_operation_name"), "{{gen_ai_operation_name}} p99")], width=8)
    b.panel("Tokens per second", "Output and input tokens per second over every request (gen_ai_server_token_usage by token type).",
            "short", [(rate("gen_ai_server_token_usage_sum", J, "gen_ai_token_type"), "{{gen_ai_token_type}} tokens/s")], width=8)
    b.row("vLLM (the simulated model under vLLM's metric names)")
    b.panel("Requests running and waiting", "vllm:num_requests_running and vllm:num_requests_waiting: requests in the batch and queued behind it (--llm-max-num-seqs).",
            "short", [(f"sum(vllm:num_requests_running{J})", "running"),
                      (f"sum(vllm:num_requests_waiting{J})", "waiting")], width=6)
    b.panel("Queue time", "vllm:request_queue_time_seconds: arrival to scheduled, p50 and p99.",
            "s", [(quantile(0.5, "vllm:request_queue_time_seconds", J), "p50"),
                  (quantile(0.99, "vllm:request_queue_time_seconds", J), "p99")], width=6)
    b.panel("Time to first token (vLLM)", "vllm:time_to_first_token_seconds, p50 and p99.",
            "s", [(quantile(0.5, "vllm:time_to_first_token_seconds", J), "p50"),
                  (quantile(0.99, "vllm:time_to_first_token_seconds", J), "p99")], width=6)
    b.panel("Inter-token latency", "vllm:inter_token_latency_seconds (vLLM 0.11 on; 0.10 names it vllm:time_per_output_token_seconds, which trickle also exposes): each output step's time since the request's previous one, p50 and p99.",
            "s", [(quantile(0.5, "vllm:inter_token_latency_seconds", J), "p50"),
                  (quantile(0.99, "vllm:inter_token_latency_seconds", J), "p99")], width=6)
    b.row("vLLM KV cache (the simulated model's, with --llm-kv-blocks)")
    b.panel("KV cache usage", "vllm:kv_cache_usage_perc: the share of KV cache blocks running requests hold (1 = full: new requests wait, running ones preempt).",
            "percentunit", [(f"max(vllm:kv_cache_usage_perc{J})", "usage")], width=8)
    b.panel("Prefix cache hit rate", "vllm:prefix_cache_hits_total / vllm:prefix_cache_queries_total: the share of prompt tokens found in the prefix cache (their prefill skipped), in tokens as vLLM counts them.",
            "percentunit", [(f"sum(rate(vllm:prefix_cache_hits_total{J}[$__rate_interval])) / sum(rate(vllm:prefix_cache_queries_total{J}[$__rate_interval]))", "hit rate")], width=8)
    b.panel("Preemptions", "vllm:num_preemptions_total: running requests preempted per second because the KV cache had no free block (each is recomputed later; its client sees a long gap).",
            "ops", [(f"sum(rate(vllm:num_preemptions_total{J}[$__rate_interval]))", "preemptions/s")], width=8)
    b.row("Process")
    b.panel("CPU", "CPU time per second of each process (1 = one core).", "percentunit",
            [(rate("process_cpu_seconds_total", J, "instance"), "{{instance}}")])
    b.panel("Resident memory", "Resident memory of each process.", "bytes",
            [(f"sum by (instance) (process_resident_memory_bytes{J})", "{{instance}}")])
    variables = [
        datasource_var(),
        query_var("job", "Job", "label_values(trickle_build_info, job)", include_all=False),
        query_var("instance", "Instance", 'label_values(trickle_build_info{job=~"$job"}, instance)'),
        {"name": "transport", "label": "Transport", "type": "custom", "query": "text,ndjson,sse,ws",
         "multi": True, "includeAll": True, "allValue": ".*", "current": {}},
    ]
    return dashboard("trickle", "trickle: streams", "Open streams, TTFB, gaps, outcomes and throughput of trickle, from its Prometheus metrics.",
                     variables, b)


def trickle_load():
    b = Board()
    L = '{job=~"$job"}'
    S = '{job=~"$server_job"}'
    b.row("Load run")
    b.panel("Open streams (client)", "Streams the load tester holds open.", "short",
            [(f"sum(trickle_load_streams_open{L})", "open")])
    b.panel("TTFB: client side and server side",
            "Time to the first event as the client saw it (trickle_load_ttfb_seconds) beside the server's own measure (trickle_stream_ttfb_seconds): the difference is the network, proxies and queueing in between.",
            "s", [(quantile(0.5, "trickle_load_ttfb_seconds", '{job=~"$job", at="first_event"}'), "client p50"),
                  (quantile(0.99, "trickle_load_ttfb_seconds", '{job=~"$job", at="first_event"}'), "client p99"),
                  (quantile(0.5, "trickle_stream_ttfb_seconds", S), "server p50"),
                  (quantile(0.99, "trickle_stream_ttfb_seconds", S), "server p99")])
    b.panel("Events per second (client)", "Events received per second.", "ops",
            [(f"sum(rate(trickle_load_events_total{L}[$__rate_interval]))", "events/s")])
    b.panel("Connections by end", "Connections finished per second by how they ended (completed, truncated, reconnect_hint, http_status...).",
            "ops", [(rate("trickle_load_connections_total", L, "end"), "{{end}}")])
    b.panel("Gap between events (client)", "Median and 99th percentile of the time between events as received.", "s",
            [(quantile(0.5, "trickle_load_gap_seconds", L), "p50"), (quantile(0.99, "trickle_load_gap_seconds", L), "p99")])
    b.panel("Time to headers (client)", "99th percentile of the time to response headers (what generic load testers report).", "s",
            [(quantile(0.99, "trickle_load_headers_seconds", L), "p99")])
    b.panel("Reconnects per second", "Resuming reconnects after cuts or reconnect hints.", "ops",
            [(f"sum(rate(trickle_load_reconnects_total{L}[$__rate_interval]))", "reconnects/s")])
    b.panel("Received bytes per second", "Body bytes received per second.", "Bps",
            [(f"sum(rate(trickle_load_bytes_total{L}[$__rate_interval]))", "bytes/s")])
    b.panel("Connection lifetime by end", "99th percentile of connection lifetime per end reason: cuts show up as a wall at the platform timeout.",
            "s", [(quantile(0.99, "trickle_load_connection_duration_seconds", L, "le, end"), "{{end}} p99")], width=24)
    variables = [
        datasource_var(),
        query_var("job", "Load job", "label_values(trickle_load_events_total, job)", include_all=False),
        query_var("server_job", "Server job", "label_values(trickle_build_info, job)", include_all=False),
    ]
    return dashboard("trickle-load", "trickle-load: load run", "What the load tester's clients see, beside what trickle measured.",
                     variables, b)


if __name__ == "__main__":
    for name, board in (("trickle.json", trickle()), ("trickle-load.json", trickle_load())):
        with open(os.path.join(HERE, name), "w") as f:
            json.dump(board, f, indent=2)
            f.write("\n")
        print(f"wrote dashboards/{name}: {len([p for p in board['panels'] if p['type'] != 'row'])} panels")
