"""Helpers shared by the load benchmarks (ingest.py, boot.py)."""

import json
import os
import socket
import subprocess
import urllib.request


def free_port():
    """A TCP port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def admin_raw(base, token, method, path, body=None):
    """An admin API call with the bearer token; the answer's bytes."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("content-type", "application/json")
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.read()


def admin(base, token, method, path, body=None):
    """An admin API call with the bearer token; the JSON answer."""
    return json.loads(admin_raw(base, token, method, path, body) or b"null")


def spawn_server(binary, data, log, token):
    """`nitejar serve` on `data` (SQLite) on a free port, logging warnings and errors to `log`;
    (process, base URL). Not waited for."""
    port = free_port()
    env = dict(os.environ)
    env.pop("DATABASE_URL", None)
    env.update(
        NITEJAR_DATA_DIR=data,
        NITEJAR_BIND=f"127.0.0.1:{port}",
        NITEJAR_ADMIN_TOKEN=token,
        RUST_LOG=env.get("RUST_LOG", "warn"),
    )
    proc = subprocess.Popen([binary, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{port}"


# Thread names (as the kernel keeps them: 15 bytes) and what the CPU report calls them.
THREAD_GROUPS = [
    ("tokio-runtime-w", "requests"),  # the async workers: HTTP, parse calls on their thread
    ("tokio-rt-worker", "requests"),
    ("nitejar-db-writ", "writer"),
    ("nitejar-runs", "runs"),
    ("nitejar-db-chec", "checkpoint"),
]


def _ticks(stat_line):
    # The name (field 2) is in parentheses and may hold spaces: split after its last ')'.
    name = stat_line[stat_line.index("(") + 1 : stat_line.rindex(")")]
    fields = stat_line[stat_line.rindex(")") + 2 :].split()
    return name, int(fields[11]) + int(fields[12])  # utime + stime


class CpuSnapshot:
    """CPU time of a process (by thread group) and of the machine, read from /proc."""

    def __init__(self, pid):
        self.groups = {}
        with open(f"/proc/{pid}/stat") as f:
            # The whole process, threads that have exited included.
            _, self.process = _ticks(f.read())
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/stat") as f:
                    name, t = _ticks(f.read())
            except OSError:
                continue  # exited meanwhile: counted in the process total
            group = next((g for prefix, g in THREAD_GROUPS if name.startswith(prefix)), "other")
            self.groups[(tid, group)] = t
        with open("/proc/stat") as f:
            cpu = [int(x) for x in f.readline().split()[1:]]
        # user nice system idle iowait irq softirq steal
        self.machine_total = sum(cpu[:8])
        self.machine_idle = cpu[3] + cpu[4]
        self.machine_steal = cpu[7] if len(cpu) > 7 else 0
        self.children = os.times().children_user + os.times().children_system


def cpu_report(before, after, requests):
    """One line: CPU µs per delivery of the server (by thread group) and of the load generator
    (this process's finished children), and the machine's idle and stolen shares. CPU per
    delivery moves less with the machine's load than throughput does."""
    if requests <= 0:
        return "cpu per delivery: no deliveries answered"
    hz = os.sysconf("SC_CLK_TCK")
    per = 1e6 / hz / requests
    groups = {}
    for key, t in after.groups.items():
        groups[key[1]] = groups.get(key[1], 0) + t - before.groups.get(key, 0)
    server = after.process - before.process
    groups["other"] = server - sum(v for g, v in groups.items() if g != "other")
    parts = ", ".join(
        f"{g} {groups.get(g, 0) * per:.0f}"
        for g in ["requests", "writer", "runs", "checkpoint", "other"]
    )
    load_gen = (after.children - before.children) * 1e6 / requests
    total = max(after.machine_total - before.machine_total, 1)
    idle = 100 * (after.machine_idle - before.machine_idle) / total
    steal = 100 * (after.machine_steal - before.machine_steal) / total
    return (
        f"cpu per delivery: server {server * per:.0f} us ({parts}), wrk {load_gen:.0f} us; "
        f"machine {idle:.0f}% idle, {steal:.0f}% stolen"
    )
