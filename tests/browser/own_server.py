"""A student's server that sends what the student likes: the attacker's side of the browser attack tests.

A student runs arbitrary code and controls everything their server answers (issue 20). The hub's own
configuration (`disable_user_config`) now keeps the stock server from publishing files from the student's home,
so these tests do not rely on a particular trick: the hub of their stack starts this script as every user's
server (`--LocalHomeSpawner.cmd`, tests/live.py `Stack(hub_args=...)`), on the port and path the hub gives that
user, with the environment the hub gives every server. For a user whose home holds `own-server.html` it
answers every request under the server's path with that page (and `/api` as a server would, so the hub sees it
start); for everyone else it becomes the real `jupyterhub-singleuser`, arguments and all.

    own_server.py [jupyterhub-singleuser's arguments]
"""

from __future__ import annotations

import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

PAGE_NAME = "own-server.html"


def serve(page: bytes, service_url: str) -> None:
    url = urlsplit(service_url)
    prefix = url.path if url.path.endswith("/") else url.path + "/"

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if not self.path.startswith(prefix) and self.path != prefix.rstrip("/"):
                self.send_error(404)
                return
            api = self.path.startswith(prefix + "api")
            body = b'{"version": "own"}' if api else page
            self.send_response(200)
            self.send_header("Content-Type", "application/json" if api else "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    ThreadingHTTPServer((url.hostname, url.port), Handler).serve_forever()


def main() -> None:
    page = Path(os.environ.get("HOME", "/nonexistent")) / PAGE_NAME
    if page.is_file():
        serve(page.read_bytes(), os.environ["JUPYTERHUB_SERVICE_URL"])
        return
    singleuser = str(Path(sys.executable).with_name("jupyterhub-singleuser"))
    os.execv(singleuser, [singleuser, *sys.argv[1:]])


if __name__ == "__main__":
    main()
