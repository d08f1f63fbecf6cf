"""The Python proxy (hubconfig/pyproxy.py) run as the hub runs it, in front of a real slow upstream."""

import http.server
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from tests.live import free_port

PYPROXY = Path(__file__).resolve().parents[2] / "hubconfig" / "pyproxy.py"
SLOW_SECONDS = 23  # past Tornado's default request timeout (20 s), which the port used to apply


class _Slow(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        time.sleep(SLOW_SECONDS)
        body = b"data: ready\n\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_long_answer_like_the_spawn_progress_stream_is_not_cut_at_twenty_seconds():
    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    port, api_port, token = free_port(), free_port(), "test-token"
    env = {**os.environ, "CONFIGPROXY_AUTH_TOKEN": token}
    proxy = subprocess.Popen(
        [sys.executable, str(PYPROXY), "--ip", "127.0.0.1", "--port", str(port), "--api-ip", "127.0.0.1",
         "--api-port", str(api_port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        api = f"http://127.0.0.1:{api_port}/api/routes/"
        deadline = time.monotonic() + 30
        while True:
            try:
                request = urllib.request.Request(
                    api,
                    data=json.dumps({"target": f"http://127.0.0.1:{upstream.server_port}"}).encode(),
                    headers={"Authorization": f"token {token}"},
                    method="POST",
                )
                urllib.request.urlopen(request, timeout=5).close()
                break
            except OSError:
                assert time.monotonic() < deadline and proxy.poll() is None, "the proxy did not start"
                time.sleep(0.2)
        started = time.monotonic()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/progress", timeout=SLOW_SECONDS + 30) as answer:
            assert answer.status == 200 and answer.read() == b"data: ready\n\n"
        assert time.monotonic() - started >= SLOW_SECONDS
    finally:
        proxy.terminate()
        proxy.wait(timeout=10)
        upstream.shutdown()
