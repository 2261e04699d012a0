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


def admin(base, token, method, path, body=None):
    """An admin API call with the bearer token; the JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("content-type", "application/json")
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read() or b"null")


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
