#!/usr/bin/env python3
"""Hand-made fixtures for the formats no real tool here can produce (Envoy/Plano and
nginx logs, vLLM, aiperf, guidellm, generic JSON Lines), written from the documented
formats (see the readers' module docs and /work/shared/reference/formats.md).

Each case writes a wire journal (what the audit takes as the truth) and the tool's view
of the same requests with deliberate, documented differences. Deterministic: rerunning
gives the same files. Usage: make_synthetic_fixtures.py OUT_DIR
"""
import json
import os
import sys
from datetime import datetime, timezone

T0 = 1_795_435_200_000_000_000  # 2026-11-23T12:00:00Z
MS = 1_000_000
A, B = "10.0.0.2:8000", "10.0.0.3:8000"


def rfc3339(ns):
    s, frac = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(s, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


def record(req_ns, resp_ns, upstream, status, client, retry=None, kind="response"):
    r = {"v": 1, "kind": kind, "unix_ns": resp_ns, "time": rfc3339(resp_ns),
         "request_unix_ns": req_ns, "client": client, "upstream": upstream}
    if kind == "response":
        r["status"] = status
    else:
        r["reason"] = "reset"
    r.update({"method": "POST", "route": "/v1/chat/completions"})
    if retry is not None:
        r["client_retry"] = retry
    r["source"] = "replay"
    return r


def write(path, lines):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        for line in lines:
            f.write(line if isinstance(line, str) else json.dumps(line))
            f.write("\n")


def envoy_time(ns):
    s, frac = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(s, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac // MS:03d}Z"


def envoy(out):
    """Plano in front of A and B. Requests every 100 ms, 30 ms each.
    #5: 429 (A), 429 (B), 200 (B): one line, attempts=3 → 2 retry_absorbed.
    #8: 429 passed through → consistent 429.
    #11: Envoy's own rate limit (flag RL): no upstream request → phantom.
    #13: 503 on the wire, no log line → dropped.
    after #19: one more response, after the last logged request → boundary.
    line 4 is garbage → skipped with file:line."""
    wire, plano, default = [], [], []
    for i in range(20):
        start = T0 + i * 100 * MS
        client = f"172.17.0.5:{41000 + i}"
        fmt = '[{t}] "POST /v1/chat/completions HTTP/1.1" {code} {flags} 120 900 {dur} {ust} "-" "OpenAI/Python 2.54.0" "req-{i}" "gw.local" "{up}" "llm_cluster"'
        if i == 5:
            wire.append(record(start + 2 * MS, start + 8 * MS, A, 429, "10.0.0.1:50001"))
            wire.append(record(start + 10 * MS, start + 16 * MS, B, 429, "10.0.0.1:50002"))
            wire.append(record(start + 18 * MS, start + 28 * MS, B, 200, "10.0.0.1:50002"))
            line = fmt.format(t=envoy_time(start), code=200, flags="-", dur=30, ust=10, i=i, up=B) + " attempts=3"
        elif i == 11:
            line = fmt.format(t=envoy_time(start), code=429, flags="RL", dur=0, ust="-", i=i, up="-") + " attempts=0"
        elif i == 13:
            wire.append(record(start + 2 * MS, start + 20 * MS, A, 503, "10.0.0.1:50001"))
            line = None
        else:
            code = 429 if i == 8 else 200
            wire.append(record(start + 2 * MS, start + 20 * MS, A, code, "10.0.0.1:50001"))
            line = fmt.format(t=envoy_time(start), code=code, flags="-", dur=30, ust=18, i=i, up=A) + " attempts=1"
        if line:
            plano.append(line)
            default.append(line.rsplit(' "llm_cluster"', 1)[0])
        if i == 3:
            plano.append("this is not an access log line")
    last = T0 + 20 * 100 * MS + 200 * MS
    wire.append(record(last, last + 20 * MS, A, 200, "10.0.0.1:50001"))
    write(f"{out}/envoy/wire.jsonl", wire)
    write(f"{out}/envoy/plano-access.log", plano)
    write(f"{out}/envoy/envoy-default.log", default)


def nginx(out):
    """nginx with `"$upstream_addr" "$upstream_status"` after `combined`.
    #3: proxy_next_upstream: 429 from A, then 200 from B → 1 retry_absorbed.
    #6: the upstream reset the connection; nginx logs 502 → phantom (nothing on the wire).
    The rest 200, one 429 passed through (#8)."""
    wire, log = [], []
    for i in range(10):
        start = T0 + i * 1_000 * MS + 100 * MS
        t = datetime.fromtimestamp((start + 50 * MS) // 1_000_000_000, timezone.utc).strftime("%d/%b/%Y:%H:%M:%S +0000")
        if i == 3:
            wire.append(record(start, start + 10 * MS, A, 429, "10.0.0.1:50010"))
            wire.append(record(start + 12 * MS, start + 30 * MS, B, 200, "10.0.0.1:50011"))
            ups, st, code = f"{A}, {B}", "429, 200", 200
        elif i == 6:
            wire.append(record(start, start + 10 * MS, A, None, "10.0.0.1:50010", kind="no_response"))
            ups, st, code = A, "502", 502
        else:
            code = 429 if i == 8 else 200
            wire.append(record(start, start + 20 * MS, A, code, "10.0.0.1:50010"))
            ups, st = A, str(code)
        log.append(f'192.168.1.20 - - [{t}] "POST /v1/chat/completions HTTP/1.1" {code} 512 "-" "python-requests/2.34.2" "{ups}" "{st}"')
    write(f"{out}/nginx/wire.jsonl", wire)
    write(f"{out}/nginx/access.log", log)


def benchmarks(out):
    """One wire run (12 requests to A, every 250 ms: 429 at #4 and #9) seen by vLLM,
    aiperf, guidellm and a JSON Lines report.
    vLLM: perf_counter start times (own clock), reason texts: all consistent.
    aiperf: #9 recorded with code 500 → 1 misreported.
    guidellm: counts only: all consistent.
    jsonl: #4 missing → 1 dropped (mid-run)."""
    wire, starts = [], []
    for i in range(12):
        start = T0 + i * 250 * MS
        code = 429 if i in (4, 9) else 200
        wire.append(record(start, start + 40 * MS, A, code, f"10.0.0.1:{52000 + i}"))
        starts.append((start, code))
    write(f"{out}/benchmarks/wire.jsonl", wire)

    perf0 = 81234.5  # time.perf_counter() at the first request
    vllm = {
        "date": "20261123-120000", "backend": "openai-chat", "model_id": "mock-model",
        "num_prompts": 12, "duration": 3.1, "completed": 10, "failed": 2,
        "request_throughput": 3.2, "max_concurrency": 1,
        "start_times": [perf0 + (s - T0) / 1e9 for s, _ in starts],
        "latencies": [0.045] * 12,
        "ttfts": [0.02 if c == 200 else 0.0 for _, c in starts],
        "errors": ["" if c == 200 else "Too Many Requests" for _, c in starts],
    }
    write(f"{out}/benchmarks/vllm-result.json", [json.dumps(vllm, indent=1)])

    aiperf = []
    for i, (s, c) in enumerate(starts):
        err = None
        if c == 429:
            err = {"code": 500 if i == 9 else 429, "type": "RateLimitError" if i != 9 else "InternalServerError",
                   "message": "Error code: 429 - {'error': 'rate limited'}" if i != 9 else "Internal error"}
        aiperf.append({"metadata": {"x_request_id": f"r{i}", "request_start_ns": s, "request_end_ns": s + 45 * MS},
                       "metrics": {"request_latency": {"value": 45.0, "unit": "ms"}}, "error": err})
    write(f"{out}/benchmarks/profile_export.jsonl", aiperf)

    guidellm = {"metadata": {"guidellm_version": "0.4.0"}, "benchmarks": [{
        "start_time": (T0 - 100 * MS) / 1e9, "end_time": (T0 + 12 * 250 * MS) / 1e9,
        "metrics": {"request_totals": {"successful": 10, "errored": 2, "incomplete": 0, "total": 12}},
        "requests": {"errored": [
            {"info": {"status": "errored", "error": "HTTPStatusError(\"Client error '429 Too Many Requests' for url 'http://10.0.0.2:8000/v1/chat/completions'\")"}}
            for _ in range(2)]}}]}
    write(f"{out}/benchmarks/benchmarks.json", [json.dumps(guidellm, indent=1)])

    lines = [{"ts": (s + 20 * MS) / 1e9, "status": c, "api_key": "sk-should-never-be-echoed-0123"}
             for i, (s, c) in enumerate(starts) if i != 4]
    write(f"{out}/benchmarks/requests.jsonl", lines)


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "fixtures", "synthetic")
    envoy(out)
    nginx(out)
    benchmarks(out)
    print(f"synthetic fixtures written to {out}")
