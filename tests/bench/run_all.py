"""Run every class-day benchmark (issue 11) against the real stack and print one line per figure.

    .venv/bin/python tests/bench/run_all.py                 # the full class: N=200, M=10
    .venv/bin/python tests/bench/run_all.py --quick         # N=40, M=4, one spawn round: a few minutes
    .venv/bin/python tests/bench/run_all.py --students 100 --spawn 5 --proxy node --no-spawn
    .venv/bin/python tests/bench/run_all.py --quick --env GUNICORN_THREADS=8   # compare a setting
    .venv/bin/python tests/bench/run_all.py --profile prod --no-spawn          # as a campus deploys it
    .venv/bin/python tests/bench/run_all.py --only spawn --spawn-rounds 5      # the spawn benchmark alone
    .venv/bin/python tests/bench/run_all.py --only login --students 120        # the login burst alone (A/B)

The stack is the embedded default as ./run.sh starts it (dev profile: SQLite, in-process cache, gunicorn
with deploy/gunicorn.conf.py's defaults, the Python proxy unless --proxy node), all on 127.0.0.1 with state
in a temporary folder. `--profile prod` runs the bursts and memory on the production profile instead
(tests/e2e/prodstack.py: MariaDB database of its own, Redis database 13, one worker per core (at least 2), the Node
proxy, Nginx with TLS; needs those services) and leaves out the spawn benchmark, whose path is the default's.
The spawn benchmark starts a second stack with the Docker spawner on the host network
(needs Docker and the cfps-notebook image; skipped without them). Not part of the test suite; the proxy
throughput benchmark is tests/bench/bench_proxy.py (--with-proxy-bench runs it too).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench import classday  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=200, help="N for the sign-up and login bursts (200)")
    parser.add_argument("--signup-concurrency", type=int, default=10)
    parser.add_argument("--login-concurrency", type=int, default=20)
    parser.add_argument("--spawn", type=int, default=10, help="M servers started at once (10)")
    parser.add_argument("--spawn-rounds", type=int, default=3, help="rounds of the spawn benchmark (median)")
    parser.add_argument("--profile", choices=["dev", "prod"], default="dev", help="dev: the embedded default")
    parser.add_argument("--proxy", choices=["python", "node"], help="python (dev's default) or node (prod's only)")
    parser.add_argument("--no-spawn", action="store_true", help="skip the Docker spawn benchmark")
    parser.add_argument(
        "--only",
        choices=["spawn", "login"],
        help="run this benchmark alone (spawn: no bursts, no memory; login: the login burst, no sign-ups, no memory)",
    )
    parser.add_argument("--quick", action="store_true", help="N=40, M=4, one spawn round")
    parser.add_argument("--with-proxy-bench", action="store_true", help="also run bench_proxy.py")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="a .env key for the stacks")
    args = parser.parse_args()
    extra_env = dict(item.split("=", 1) for item in args.env)
    if args.quick:
        args.students, args.spawn, args.spawn_rounds = 40, 4, 1
    prod = args.profile == "prod"
    if prod and args.proxy == "python":
        parser.error("--profile prod runs the Node proxy, as production does")
    args.proxy = args.proxy or ("node" if prod else "python")
    if args.only == "spawn" and (prod or args.no_spawn):
        parser.error("--only spawn runs the spawn benchmark, which is the dev profile's")

    started = time.monotonic()
    when = time.strftime("%Y-%m-%d %H:%M %Z")
    classday.say(
        "machine",
        f"{classday.CORES} cores, profile={args.profile}, proxy={args.proxy}, {when}, env {extra_env or 'defaults'}",
    )
    with tempfile.TemporaryDirectory(prefix="cfps-bench-") as tmp:
        if args.only != "spawn":
            hash_seconds = classday.hash_cpu_seconds()
            if prod:
                stack_cm = classday.prod_stack(Path(tmp) / "prod", extra_env)
            else:
                stack_cm = classday.new_stack(Path(tmp) / "stack", args.proxy, extra_env)
            try:
                with stack_cm as stack:
                    time.sleep(2)  # let start-up work settle before measuring idle memory
                    classday.describe(stack)
                    if args.only != "login":
                        classday.memory(stack, "idle")
                        classday.signup_burst(stack, args.students, args.signup_concurrency)
                    classday.login_burst(stack, args.students, args.login_concurrency, hash_seconds)
                    if args.only != "login":
                        classday.memory(stack, "after the bursts")
            except pytest.skip.Exception as exc:  # the prod stack's builder reports a missing service so
                classday.say(f"{args.profile} profile", f"skipped: {exc}")
                sys.exit(1)
        if args.only == "login":
            pass
        elif prod:
            classday.say("spawn", "skipped in --profile prod: the spawn path is the default's (run without it)")
        elif not args.no_spawn:
            classday.spawn(Path(tmp) / "spawn", args.proxy, args.spawn, args.spawn_rounds, extra_env)
    if args.with_proxy_bench:
        subprocess.run([sys.executable, str(Path(__file__).with_name("bench_proxy.py"))], check=False)
    classday.say("total benchmark time", f"{time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
