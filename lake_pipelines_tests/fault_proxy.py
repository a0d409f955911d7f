"""A fault-injecting HTTP proxy for an S3 server on loopback: the flaky store of the chaos tests.

It forwards every request to the upstream server (moto) unless a seeded draw says otherwise:

* ``500`` with an S3 ``InternalError`` XML body, or ``503`` with ``SlowDown`` /
  ``ServiceUnavailable`` (the request never reaches the server);
* a connection reset (the socket closed with RST before any response);
* a short delay before the request is forwarded (it then succeeds).

Decisions are reproducible: each is drawn from ``(seed, method, path, n)`` where ``n`` counts
earlier requests with the same method and path, so thread scheduling does not change which
request fails. Faults are bounded: a request identity fails at most ``max_consecutive`` times
in a row, so a client with more attempts than that always gets through.

Only loopback: it listens on 127.0.0.1 and refuses an upstream elsewhere. It runs in its own
process (``python -m lake_pipelines_tests.fault_proxy UPSTREAM --port P``) for the same reason
moto does (pyiceberg-core holds the GIL during its I/O). ``/__faults__`` is its control path:
``GET`` returns the counters as JSON, ``PUT /__faults__?rate=0.2&max_consecutive=2`` changes
the fault rate and bound (and zeroes the counters); ``&methods=DELETE,PUT`` limits the faults
to those request methods.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import random
import socket
import struct
import threading
import time
import urllib.parse
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CONTROL = "/__faults__"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}
ERRORS = {
    500: ("InternalError", "We encountered an internal error. Please try again."),
    503: ("SlowDown", "Please reduce your request rate."),
}


class Faults:
    """The fault plan and what it did (shared by the handler threads)."""

    def __init__(self, rate: float, seed: int, max_consecutive: int, delay: float) -> None:
        self.rate = rate
        self.seed = seed
        self.max_consecutive = max_consecutive
        self.delay = delay
        self.methods: frozenset[str] = frozenset()  # faults only for these; empty: all
        self.lock = threading.Lock()
        self.seen: Counter[str] = Counter()
        self.streak: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()

    def decide(self, method: str, path: str) -> str:
        """``pass``, ``delay``, ``500``, ``503`` or ``reset`` for this request."""
        identity = f"{method} {path}"
        with self.lock:
            n = self.seen[identity]
            self.seen[identity] += 1
            digest = hashlib.sha256(f"{self.seed}\0{identity}\0{n}".encode()).digest()
            draw = random.Random(digest)
            roll = draw.random()
            spared = bool(self.methods) and method not in self.methods
            if spared or roll >= self.rate or self.streak[identity] >= self.max_consecutive:
                self.streak[identity] = 0
                kind = "delay" if draw.random() < 0.05 else "pass"
            else:
                self.streak[identity] += 1
                kind = draw.choice(["500", "503", "503", "reset"])
            self.counts["requests"] += 1
            self.counts[kind] += 1
            if kind not in ("pass", "delay"):
                self.counts[f"fault {method}"] += 1
            return kind

    def stats(self) -> dict[str, float]:
        with self.lock:
            return {"rate": self.rate, "seed": self.seed, **self.counts}


def _error_body(status: int, path: str) -> bytes:
    code, message = ERRORS[status]
    if status == 503 and path.endswith("?uploads"):
        code = "ServiceUnavailable"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<Resource>{path}</Resource><RequestId>fault-proxy</RequestId></Error>"
    ).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ProxyServer

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _reset(self) -> None:
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()

    def _control(self, body: bytes) -> None:
        faults = self.server.faults
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        if self.command == "PUT" and "rate" in query:
            with faults.lock:
                faults.rate = float(query["rate"][0])
                faults.max_consecutive = int(query.get("max_consecutive", ["2"])[0])
                methods = query.get("methods", [""])[0]
                faults.methods = frozenset(m for m in methods.upper().split(",") if m)
                faults.counts.clear()
        self._reply(200, json.dumps(faults.stats()).encode(), "application/json")

    def _forward(self, body: bytes) -> None:
        upstream = self.server.upstream_connection()
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        if body or self.command in ("PUT", "POST"):
            headers["Content-Length"] = str(len(body))
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.server.drop_upstream()
            self._reset()
            return
        self.send_response(response.status, response.reason)
        head = self.command == "HEAD"  # keeps the object's Content-Length
        for key, value in response.getheaders():
            if key.lower() not in HOP_BY_HOP and (head or key.lower() != "content-length"):
                self.send_header(key, value)
        if not head:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _handle(self) -> None:
        body = self._body()
        if self.path.startswith(CONTROL):
            self._control(body)
            return
        kind = self.server.faults.decide(self.command, self.path)
        if kind == "reset":
            self._reset()
        elif kind in ("500", "503"):
            self._reply(int(kind), _error_body(int(kind), self.path), "application/xml")
        else:
            if kind == "delay":
                time.sleep(self.server.faults.delay)
            self._forward(body)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle


class ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's backlog of 5 drops a parallel client's handshakes while the accept loop
    # is busy; the kernel's retries (1, 2, 4 s) would read as injected faults that are not.
    request_queue_size = 1024

    def __init__(self, port: int, upstream: str, faults: Faults) -> None:
        target = urllib.parse.urlsplit(upstream)
        if target.hostname not in LOOPBACK:
            raise SystemExit(f"fault proxy: upstream {upstream} is not on loopback")
        self.target = (target.hostname, target.port or 80)
        self.faults = faults
        self.local = threading.local()
        super().__init__(("127.0.0.1", port), Handler)

    def upstream_connection(self) -> http.client.HTTPConnection:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(*self.target, timeout=60)
            self.local.conn = conn
        return conn

    def drop_upstream(self) -> None:
        conn = getattr(self.local, "conn", None)
        if conn is not None:
            conn.close()
        self.local.conn = None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("upstream", help="http://127.0.0.1:PORT of the S3 server")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-consecutive", type=int, default=2)
    parser.add_argument("--delay", type=float, default=0.2, help="seconds of a delay fault")
    args = parser.parse_args()
    faults = Faults(args.rate, args.seed, args.max_consecutive, args.delay)
    ProxyServer(args.port, args.upstream, faults).serve_forever()


if __name__ == "__main__":
    main()
