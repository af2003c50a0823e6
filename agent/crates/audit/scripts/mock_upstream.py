#!/usr/bin/env python3
"""A small OpenAI/Cohere-compatible mock upstream for the audit fixtures.

Answers every POST from a plan that cycles over response kinds, in arrival order:

    --plan 200x6,429x2,e429,500

    200      a normal response (SSE stream when the request asked for one)
    429/5xx  that status with an OpenAI-style JSON error body (429 carries Retry-After)
    e429     HTTP 200 whose SSE stream carries an in-stream `error` event with code 429

Each response is logged as one JSON line to --log (the mock's own view, a second
witness next to the packet capture). HTTP/1.1 keep-alive, bodies sent with
Content-Length, streams chunked.
"""
import argparse
import itertools
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STREAM_GAP_S = 0.003
TOKENS = 8  # streamed per successful response (genai-bench needs >1 for tpot)
REASONS = {200: "OK", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests",
           500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


def parse_plan(text):
    steps = []
    for item in text.split(","):
        item = item.strip()
        kind, _, times = item.partition("x")
        steps.extend([kind] * (int(times) if times else 1))
    return steps


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mock-upstream/1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self._send(200, "application/json", b'{"object":"list","data":[{"id":"mock-model","object":"model"}]}')

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        with self.server.lock:
            kind = next(self.server.plan)
            self.server.served += 1
        if self.server.delay_s:
            time.sleep(self.server.delay_s)
        stream = bool(body.get("stream"))
        cohere = self.path.startswith("/v2/")
        status = 200 if kind in ("200", "e429") else int(kind)
        # Logged before writing: a client that hangs up mid-response still shows here.
        record = {"t": time.time(), "client": "%s:%d" % self.client_address[:2],
                  "path": self.path, "kind": kind, "status": status,
                  "retry": self.headers.get("x-stainless-retry-count")}
        with self.server.lock:
            self.server.log.write(json.dumps(record) + "\n")
            self.server.log.flush()
        if kind == "200":
            if stream:
                self._send(200, "text/event-stream", sse_success(cohere))
            else:
                self._send(200, "application/json", json_success())
        elif kind == "e429":
            self._send(200, "text/event-stream", sse_error(429))
        else:
            err = {"error": {"message": f"mock upstream says {status}", "type": "mock_error",
                             "param": None, "code": str(status)}}
            headers = {}
            if status == 429 and self.server.retry_after is not None:
                headers["retry-after"] = str(self.server.retry_after)
            if status == 429 and self.server.retry_after_ms is not None:
                headers["retry-after-ms"] = str(self.server.retry_after_ms)
            self._send(status, "application/json", json.dumps(err).encode(), headers)

    def _send(self, status, ctype, payload, headers=None):
        """`payload` is bytes (sent with Content-Length) or a list of SSE events, sent
        chunked like real servers stream: the first event, a short pause, then the
        rest (genai-bench discards streams whose tokens all arrive within 1 ms)."""
        self.send_response(status, REASONS.get(status))
        self.send_header("Content-Type", ctype)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if isinstance(payload, bytes):
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i, part in enumerate([payload[0], b"".join(payload[1:])]):
            if i:
                time.sleep(STREAM_GAP_S)
            if part:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")


def json_success():
    return json.dumps({
        "id": "chatcmpl-mock", "object": "chat.completion", "created": int(time.time()),
        "model": "mock-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello there"},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": TOKENS, "total_tokens": 5 + TOKENS},
    }).encode()


def sse(events):
    return [b"data: " + json.dumps(e).encode() + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]


def sse_success(cohere):
    if cohere:
        return sse([
        ] + [{"type": "content-delta", "delta": {"message": {"content": {"text": "word "}}}}] * TOKENS + [
            {"type": "message-end", "delta": {"usage": {"tokens": {"input_tokens": 5, "output_tokens": TOKENS}}}},
        ])
    base = {"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": int(time.time()), "model": "mock-model"}
    words = ["hello"] + [" word"] * (TOKENS - 1)
    return sse(
        [{**base, "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}]} for w in words]
        + [{**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
           {**base, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": TOKENS, "total_tokens": 5 + TOKENS}}]
    )


def sse_error(code):
    return sse([{"error": {"message": "Rate limit reached (in-stream)", "type": "rate_limit_error", "code": code}}])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen", default="127.0.0.1:9001")
    ap.add_argument("--plan", default="200")
    ap.add_argument("--retry-after", type=int, default=None, help="Retry-After seconds on 429")
    ap.add_argument("--retry-after-ms", type=int, default=None, help="retry-after-ms on 429")
    ap.add_argument("--delay-ms", type=int, default=0, help="delay before every response")
    ap.add_argument("--log", default="-", help="JSON Lines log of every response")
    args = ap.parse_args()
    host, port = args.listen.rsplit(":", 1)
    server = ThreadingHTTPServer((host, int(port)), Handler)
    server.daemon_threads = True
    server.plan = itertools.cycle(parse_plan(args.plan))
    server.lock = threading.Lock()
    server.served = 0
    server.delay_s = args.delay_ms / 1000.0
    server.retry_after = args.retry_after
    server.retry_after_ms = args.retry_after_ms
    server.log = sys.stdout if args.log == "-" else open(args.log, "a")
    print(f"mock upstream on {args.listen}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
