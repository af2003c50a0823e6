"""The TLS loop `cargo xtask bench tls` times: `server PORT CERT KEY` answers every
request head with a small response over one TLS connection; `client PORT N` sends N
request heads (one SSL_write_ex + one SSL_read_ex per round trip on each side) and
prints the mean ns per round trip."""
import socket
import ssl
import sys
import time

REQUEST = b"POST /v1/chat/completions HTTP/1.1\r\nhost: bench\r\ncontent-length: 0\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nx-ratelimit-remaining-requests: 9\r\n\r\n"

if sys.argv[1] == "server":
    port, cert, key = int(sys.argv[2]), sys.argv[3], sys.argv[4]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    lsock = socket.create_server(("127.0.0.1", port))
    print("ready", flush=True)
    while True:
        conn, _ = lsock.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with ctx.wrap_socket(conn, server_side=True) as tls:
            while True:
                data = tls.recv(4096)
                if not data:
                    break
                tls.sendall(RESPONSE)
else:
    port, n = int(sys.argv[2]), int(sys.argv[3])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    tls = ctx.wrap_socket(sock)
    for _ in range(200):  # warm up
        tls.sendall(REQUEST)
        tls.recv(4096)
    start = time.perf_counter_ns()
    for _ in range(n):
        tls.sendall(REQUEST)
        tls.recv(4096)
    print((time.perf_counter_ns() - start) / n, flush=True)
    tls.close()
