#!/usr/bin/env python3
"""Boot time and resident memory of a release `nitejar` server with N hook plugins (issue 17).

Started by scripts/bench-boot.sh, which builds the server. This driver:

1. boots the server on a temporary data directory with no plugins of its own and measures the
   time from start to `/readyz` and its resident memory once idle (the baseline),
2. installs and enables N copies of the example hooks plugin, each made a distinct plugin (its
   own id, and a custom section naming the copy, so each has its own digest and compiled file
   as N different plugins would; `--identical` installs the same component N times),
3. restarts the server on that data directory (the compile cache is warm, as on an
   operator's restart) and measures the same again, several times; prints medians, the ratio
   to the baseline, and the memory per plugin, beside the targets.
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import common

TOKEN = "boot-bench-admin-token"
TARGET_BOOT_MS = 200
TARGET_MIB_PER_PLUGIN = 0.25


def admin(base, method, path, body=None):
    return common.admin(base, TOKEN, method, path, body)


def rss_kib(pid):
    """Resident KiB of the process: total, anonymous (heap, copies), file-backed (mapped), and
    the proportional set size (a file page mapped n times counts 1/n each time)."""
    fields = {"VmRSS:": 0, "RssAnon:": 0, "RssFile:": 0}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key = line.split(maxsplit=1)[0] if line.strip() else ""
            if key in fields:
                fields[key] = int(line.split()[1])
    pss = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
    return fields["VmRSS:"], fields["RssAnon:"], fields["RssFile:"], pss


def leb128(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def distinct_copy(wasm, n):
    """`wasm` with a custom section naming copy `n` appended: the same plugin, another digest."""
    name = b"nitejar-bench-copy"
    body = leb128(len(name)) + name + str(n).encode()
    return wasm + b"\x00" + leb128(len(body)) + body


class Server:
    def __init__(self, binary, data, log):
        started = time.perf_counter()
        self.proc, self.base = common.spawn_server(binary, data, log, TOKEN)
        while True:
            try:
                with urllib.request.urlopen(self.base + "/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except Exception:
                pass
            if self.proc.poll() is not None:
                sys.exit(f"the server exited ({self.proc.returncode}); see {log.name}")
            time.sleep(0.002)
        self.boot_ms = (time.perf_counter() - started) * 1000

    def settled_rss_mib(self):
        """Resident memory once background work (prepared instances) has settled."""
        last = None
        for _ in range(40):
            time.sleep(0.25)
            now = rss_kib(self.proc.pid)
            if last is not None and now[0] == last[0]:
                break
            last = now
        return tuple(kib / 1024 for kib in last)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", required=True)
    ap.add_argument("--package", required=True, help="the built example hooks package")
    ap.add_argument("--plugins", type=int, default=100)
    ap.add_argument("--boots", type=int, default=5)
    ap.add_argument("--identical", action="store_true",
                    help="install the same component N times (one compiled file for all)")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("interrupted"))

    work = tempfile.mkdtemp(prefix="nitejar-boot-")
    try:
        log = open(os.path.join(work, "server.log"), "w")

        def measure(data, label):
            boots, rss = [], []
            for _ in range(args.boots):
                s = Server(args.binary, data, log)
                boots.append(s.boot_ms)
                rss.append(s.settled_rss_mib())
                s.stop()
            # Each of total / anonymous / file-backed: its own median.
            return statistics.median(boots), tuple(statistics.median(r[i] for r in rss)
                                                   for i in range(4))

        empty = os.path.join(work, "empty")
        full = os.path.join(work, "full")
        # Compile the bundled plugins into the cache once, then measure warm boots.
        Server(args.binary, empty, log).stop()
        base_boot, base_rss = measure(empty, "empty")

        s = Server(args.binary, full, log)
        manifest = json.load(open(os.path.join(args.package, "nitejar.plugin.json")))
        for n in range(args.plugins):
            pkg = os.path.join(work, "packages", f"p{n}")
            os.makedirs(pkg)
            wasm = open(os.path.join(args.package, "plugin.wasm"), "rb").read()
            if not args.identical:
                wasm = distinct_copy(wasm, n)
            open(os.path.join(pkg, "plugin.wasm"), "wb").write(wasm)
            manifest["id"] = f"bench.hooks-{n:03}"
            json.dump(manifest, open(os.path.join(pkg, "nitejar.plugin.json"), "w"))
            report = admin(s.base, "POST", "/api/admin/plugins/install",
                           {"sourceKind": "local", "sourceRef": pkg})
            admin(s.base, "POST", f"/api/admin/plugins/{report['pluginId']}/enable",
                  {"consent": True})
        s.stop()
        boot, rss = measure(full, "full")

        per_plugin = (rss[0] - base_rss[0]) / max(args.plugins, 1)
        print(f"nitejar boot benchmark: {os.cpu_count()} cores, load average "
              f"{open('/proc/loadavg').read().split()[0]}, median of {args.boots} warm boots")
        def mem(r):
            return (f"{r[0]:6.1f} MiB resident ({r[1]:.1f} anonymous, {r[2]:.1f} file-backed; "
                    f"proportional {r[3]:.1f})")
        print(f"  no plugins installed:    ready in {base_boot:6.1f} ms, {mem(base_rss)}")
        kind = "identical" if args.identical else "distinct"
        print(f"  {args.plugins} {kind} hook plugins: ready in {boot:6.1f} ms "
              f"({boot / base_boot:.2f}x), {mem(rss)}")
        note = "" if args.plugins == 100 else " (the target is for 100 plugins)"
        print(f"  boot with {args.plugins} plugins: {'met' if boot <= TARGET_BOOT_MS else 'NOT met'} "
              f"(target <= {TARGET_BOOT_MS} ms){note}")
        print(f"  memory per idle plugin: {per_plugin:.3f} MiB: "
              f"{'met' if per_plugin <= TARGET_MIB_PER_PLUGIN else 'NOT met'} "
              f"(target <= {TARGET_MIB_PER_PLUGIN} MiB)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
