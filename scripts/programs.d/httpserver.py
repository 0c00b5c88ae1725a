"""A tiny HTTP server on 127.0.0.1 for the locust run.

Prints its port on the first line, answers every GET with 200 "ok", and on SIGTERM prints the
number of requests it served and exits. It exits by itself after --lifetime seconds.
"""

from __future__ import annotations

import argparse
import http.server
import signal
import sys
import threading

served = 0
lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        global served
        with lock:
            served += 1
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lifetime", type=float, default=120.0)
    args = parser.parse_args()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)

    def stop(*_: object) -> None:
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    timer = threading.Timer(args.lifetime, stop)
    timer.daemon = True  # a stopped server exits at once
    timer.start()
    server.serve_forever()
    print(f"served {served}", flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
