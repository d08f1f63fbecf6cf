"""`manage.py gen_firewall`: the rules pass `iptables-restore --test`, and loaded for real (in a private
network namespace made for the test, never the machine's own firewall) they let a container's interface
reach only the hub's API and MySQL, keep every other rule, and can be loaded any number of times.

In the namespace the "container interface" is its own loopback: every packet stays on 127.0.0.1 there.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tests.deploy.conftest import manage, require_root, require_tool
from tests.deploy.test_systemd import parse_unit

HUB_PORT, MYSQL_PORT, PORTAL_PORT = 18081, 13306, 18010


def rules(**env: str) -> str:
    return manage("gen_firewall", env=env).stdout


def test_rules_pass_iptables_restore_test():
    require_root("iptables-restore --test talks to the kernel")
    iptables_restore = require_tool("iptables-restore", "iptables")
    text = rules(DOCKER_INTERFACE_IP="172.17.0.1", SWARM_WORKERS="10.0.0.0/24")
    for extra in ([], ["--noflush"]):
        result = subprocess.run(
            [iptables_restore, "--test", *extra], input=text, capture_output=True, text=True, timeout=30
        )
        assert result.returncode == 0, result.stderr


def test_rules_allow_only_the_hub_api_and_mysql_from_the_docker_bridges():
    text = rules(HUB_PORT="8181", DATASET_DATABASE_URL="mysql://jupyterhub:x@172.17.0.1:3307/cfps")
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines[0] == "*filter" and lines[-1] == "COMMIT"
    assert "-A CFPS-INPUT -i docker0 -j CFPS-CONTAINERS" in lines
    assert "-A CFPS-INPUT -i br-+ -j CFPS-CONTAINERS" in lines
    accepted = [line for line in lines if line.startswith("-A CFPS-CONTAINERS") and line.endswith("-j ACCEPT")]
    assert accepted == [
        "-A CFPS-CONTAINERS -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
        "-A CFPS-CONTAINERS -p tcp -m tcp --dport 8181 -j ACCEPT",
        "-A CFPS-CONTAINERS -p tcp -m tcp --dport 3307 -j ACCEPT",
    ]
    # Other machines never reach the hub directly (it listens on 0.0.0.0 in bridge mode): after the bridges' jumps.
    closed = "-A CFPS-INPUT ! -i lo -p tcp -m tcp --dport 8181 -j REJECT --reject-with tcp-reset"
    assert lines.index(closed) > lines.index("-A CFPS-INPUT -i br-+ -j CFPS-CONTAINERS")
    assert lines[-3:-1] == [
        "-A CFPS-CONTAINERS -j REJECT --reject-with icmp-port-unreachable",
        "-I INPUT 1 -j CFPS-INPUT",
    ]


def test_swarm_workers_reach_the_hub_port_and_other_machines_still_do_not():
    text = rules(HUB_PORT="8181", SWARM_WORKERS="10.0.0.0/24, 10.0.1.0/24")
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    closed = lines.index("-A CFPS-INPUT ! -i lo -p tcp -m tcp --dport 8181 -j REJECT --reject-with tcp-reset")
    for network in ("10.0.0.0/24", "10.0.1.0/24"):
        assert lines.index(f"-A CFPS-INPUT -s {network} -p tcp -m tcp --dport 8181 -j ACCEPT") < closed
    assert not [line for line in lines if "-s " in line and "8181" not in line], "workers get the hub's port only"
    assert "-s " not in rules(HUB_PORT="8181"), "no workers, no exception"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DOCKER_BRIDGE_INTERFACES": "docker0 -j ACCEPT"}, "DOCKER_BRIDGE_INTERFACES"),
        ({"SWARM_WORKERS": "10.0.0.0/24 -j ACCEPT"}, "SWARM_WORKERS"),
        ({"DOCKER_INTERFACE_IP": "172.17.0.1/16"}, "DOCKER_INTERFACE_IP"),
        ({"DATASET_DATABASE_URL": "mysql://u:p@db:http/cfps"}, "DATASET_DATABASE_URL"),
    ],
)
def test_bad_values_are_refused_in_one_line(env, named):
    result = manage("gen_firewall", env=env, check=False)
    assert result.returncode != 0 and named in result.stderr and "Traceback" not in result.stderr


PROBE = textwrap.dedent(
    """
    import json, socket, sys
    listeners = []
    for port in map(int, sys.argv[1:]):
        server = socket.create_server(("127.0.0.1", port))
        listeners.append(server)
    seen = {}
    for port in map(int, sys.argv[1:]):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=3).close()
            seen[port] = "open"
        except ConnectionRefusedError:
            seen[port] = "refused"
        except OSError as exc:
            seen[port] = type(exc).__name__
    print(json.dumps(seen))
    """
)


def test_loaded_rules_let_containers_reach_only_the_hub_and_mysql_and_load_twice_cleanly(tmp_path):
    require_root("loading iptables rules in a private network namespace")
    unshare = require_tool("unshare", "util-linux")
    ip = require_tool("ip", "iproute2")
    require_tool("iptables", "iptables")
    rules_file = tmp_path / "firewall.rules"
    env = {
        "DOCKER_BRIDGE_INTERFACES": "lo",  # the namespace's loopback plays the Docker bridge
        "DOCKER_INTERFACE_IP": "127.0.0.1",
        "HUB_PORT": str(HUB_PORT),
        "DATASET_DATABASE_URL": f"mysql://jupyterhub:x@127.0.0.1:{MYSQL_PORT}/cfps",
    }
    manage("gen_firewall", "--output", str(rules_file), env=env)
    manage("gen_systemd", "--output", str(tmp_path), "--firewall-rules", str(rules_file), env=env)
    service = parse_unit(tmp_path / "cfps-firewall.service")["Service"]
    start_pre = service["ExecStartPre"][0].removeprefix("-")
    start = service["ExecStart"][0]
    (tmp_path / "probe.py").write_text(PROBE)
    script = textwrap.dedent(
        f"""
        set -eu
        {ip} link set lo up
        iptables -w -A INPUT -p tcp --dport 22 -j ACCEPT  # the operator's own rule
        for boot in 1 2; do  # what `systemctl restart cfps-firewall` does, twice
            {start_pre} 2>/dev/null || true
            {start}
        done
        iptables -w -S
        echo PROBE
        {sys.executable} {tmp_path / "probe.py"} {HUB_PORT} {MYSQL_PORT} {PORTAL_PORT}
        """
    )
    result = subprocess.run([unshare, "--net", "bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    ruleset, probe = result.stdout.split("PROBE\n")
    assert ruleset.count("-A INPUT -j CFPS-INPUT") == 1, ruleset
    assert "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT" in ruleset, ruleset
    assert ruleset.count(f"--dport {HUB_PORT} -j ACCEPT") == 1, ruleset
    assert json.loads(probe) == {str(HUB_PORT): "open", str(MYSQL_PORT): "open", str(PORTAL_PORT): "refused"}
