"""A scripted HTTPS upstream for ratewire's TLS tests (Python http.server + ssl, so it
uses the system's OpenSSL too). The status of each request is in its query
(`?status=429`); 429s carry `Retry-After: 7`; `?status=hang` is never answered (the
connection is held for 10 s, then closed) and not counted. On SIGTERM it prints the statuses it
sent as one JSON line and exits."""
import http.server
import json
import os
import signal
import ssl
import sys
import threading
import time

counts = {}
lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.answer()

    def do_POST(self):
        n = int(self.headers.get("content-length") or 0)
        if n:
            self.rfile.read(n)
        self.answer()

    def answer(self):
        if "?status=hang" in self.path:
            time.sleep(10)
            self.close_connection = True
            return
        status = 200
        if "?status=" in self.path:
            status = int(self.path.split("?status=", 1)[1][:3])
        with lock:
            counts[str(status)] = counts.get(str(status), 0) + 1
        body = b'{"ok":true}\n'
        self.send_response(status)
        if status == 429:
            self.send_header("Retry-After", "7")
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def report(*_):
    with lock:
        print(json.dumps(counts), flush=True)
    os._exit(0)


host, port, cert, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
server = http.server.ThreadingHTTPServer((host, port), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
signal.signal(signal.SIGTERM, report)
print("ready", flush=True)
server.serve_forever()
