"""Benchmark: small HTTP requests through JupyterHub's two proxies (PROXY=python vs PROXY=node).

Not a test: it prints figures. Run it with

    .venv/bin/python tests/bench/bench_proxy.py [--seconds 5] [--rounds 3]

Each proxy runs alone (`configurable-http-proxy` from .venv/bin, and from node_modules/.bin) with one route to
an nginx that answers "ok" from memory, so the backend is never the bottleneck. `wrk` (Debian package) sends
keep-alive requests over 50 connections. The machine is shared and noisy, so the report is the median of
several rounds and the node/python ratio, not absolute numbers. Everything listens on 127.0.0.1.
"""

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.live import free_port  # noqa: E402

PROXIES = {
    "python": [str(Path(sys.executable).with_name("configurable-http-proxy"))],
    "node": [str(REPO / "node_modules" / ".bin" / "configurable-http-proxy")],
}
NGINX_CONF = """
daemon off; pid {dir}/nginx.pid; error_log {dir}/error.log; worker_processes 1;
events {{ worker_connections 1024; }}
http {{ access_log off; server {{ listen 127.0.0.1:{port}; location / {{ return 200 "ok"; }} }} }}
"""


def wait_for(url: str, timeout: float = 20) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with opener.open(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing answered at {url} within {timeout}s")


def wrk(url: str, seconds: int) -> float:
    out = subprocess.run(
        ["wrk", "-t2", "-c50", f"-d{seconds}s", url], capture_output=True, text=True, check=True
    ).stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing: apt-get install {tool}")
    if not Path(PROXIES["node"][0]).exists():
        raise SystemExit("node proxy missing: run npm ci in the repo")

    with tempfile.TemporaryDirectory() as tmp:
        backend_port = free_port()
        conf = Path(tmp) / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=tmp, port=backend_port))
        backend = subprocess.Popen(["nginx", "-c", str(conf), "-p", tmp], stderr=subprocess.DEVNULL)
        try:
            wait_for(f"http://127.0.0.1:{backend_port}/")
            results: dict[str, list[float]] = {name: [] for name in PROXIES}
            for round_no in range(1, args.rounds + 1):
                for name, command in PROXIES.items():  # interleaved, so drift hits both alike
                    port, api = free_port(), free_port()
                    proxy = subprocess.Popen(
                        [*command, "--ip", "127.0.0.1", "--port", str(port), "--api-ip", "127.0.0.1",
                         "--api-port", str(api), "--default-target", f"http://127.0.0.1:{backend_port}",
                         "--log-level", "error"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                        env={"CONFIGPROXY_AUTH_TOKEN": "bench", "PATH": "/usr/bin:/bin"},
                    )  # fmt: skip
                    try:
                        wait_for(f"http://127.0.0.1:{port}/")
                        wrk(f"http://127.0.0.1:{port}/", 1)  # warm-up
                        rate = wrk(f"http://127.0.0.1:{port}/", args.seconds)
                        results[name].append(rate)
                        print(f"round {round_no}: {name:6s} {rate:9.0f} req/s", flush=True)
                    finally:
                        proxy.terminate()
                        proxy.wait(timeout=10)
        finally:
            backend.terminate()
            backend.wait(timeout=10)

    medians = {name: statistics.median(rates) for name, rates in results.items()}
    print(f"\nmedian of {args.rounds} rounds, {args.seconds} s each, 50 connections:")
    for name, value in medians.items():
        print(f"  {name:6s} {value:9.0f} req/s")
    print(f"  node / python = {medians['node'] / medians['python']:.1f}x")


if __name__ == "__main__":
    main()
