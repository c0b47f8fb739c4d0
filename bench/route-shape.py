#!/usr/bin/env python3
"""How long Envoy takes to apply Trellis's `outbound` route configuration, and
what it holds in memory, per part of its shape.

Two phases, one real Envoy each (`--concurrency 2`, as a sidecar runs):

1. live: `trellis serve` on the push benchmark's mesh (N ServiceEntries with one
   127.0.0.1 endpoint each, one VirtualService on svc-0 whose response header
   carries the version; every update flips the endpoints' ports and the header,
   written to one file and renamed into place, as ../shared/bench/trellis_push.py
   does; `--change route|endpoints` changes only one of them) and one sidecar
   (`trellis bootstrap`, service `client`). Per update, Envoy's CPU time (all its
   threads, from /proc/PID/task/*/schedstat) over a fixed window, less that of an
   idle window of the same length (polling the admin API for the new version
   would cost Envoy more than the update); over the run, the growth of Envoy's
   own `update_duration` histograms (RDS, CDS, the per-cluster EDS ones summed)
   per update (Envoy merges histograms at its 5 s stats flush).
2. replay: the same sidecar's config as a static bootstrap (bench/sidecar-tax.py's
   replay), except that the `outbound` route configuration comes over ADS from
   bench/rds-replay (a go-control-plane server). Each update sends one variant of
   the route configuration (`VARIANTS`, the svc-0 header carrying the update's
   number so every update is a real change), variants alternating in one Envoy,
   their order rotated every round. Per update: RDS `update_duration` (Envoy's
   ms histogram, sum growth), Envoy's CPU time for the update, set → ACK wall
   time, and Envoy's heap (`server.memory_allocated`) once the update settled.
   `--boot B,B...` replays under several variants of the bootstrap itself
   (`BOOT_VARIANTS`, e.g. its stats config), one Envoy and one rds-replay
   each, all running at once; every round sends each route variant to each
   Envoy in turn, so all pairs share the machine's load.

Medians over the rounds. Envoy's histogram has millisecond resolution and
counts wall time, which on a loaded machine is mostly waiting for a core; the
CPU time counts the work (it still moves by about 10 % under heavy load), which
makes it the measure to compare on a shared machine.

Usage: bench/route-shape.py [--services N...] [--updates U] [--change both|route|endpoints] [--live-only]
                            [--replay-bin BIN] [--keep DIR] [--boot B,B...] TRELLIS_BIN [VARIANT...]
BIN defaults to $PEERS_DIR/bin/rds-replay, built on first use with the Go toolchain
that ../shared/bench/build_go_control_plane.sh unpacks into $PEERS_DIR.
Every process is started and killed by its own PID; every wait is bounded.
"""
import argparse
import copy
import importlib.util
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("sidecar_tax", os.path.join(HERE, "sidecar-tax.py"))
tax = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tax)
PEERS = os.environ.get("PEERS_DIR", "/tmp/peers")


def mesh_yaml(n, v, change="both"):
    """The push benchmark's mesh at update v (trellis_push.py's config); with
    `change` "route" the endpoints stay, with "endpoints" the header does."""
    flip = 1000 if v % 2 and change != "route" else 0
    if change == "endpoints":
        v = 0
    docs = [f"""apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: svc-{i}, namespace: default}}
spec:
  hosts: [svc-{i}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  endpoints: [{{address: 127.0.0.1, ports: {{http: {30000 + flip + i}}}}}]""" for i in range(n)]
    docs.append(f"""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: svc-0, namespace: default}}
spec:
  hosts: [svc-0]
  http:
  - headers: {{response: {{set: {{x-config-version: "{v}"}}}}}}
    route: [{{destination: {{host: svc-0}}}}]""")
    return "\n---\n".join(docs) + "\n"


def write_mesh_file(path, text):
    tmp = os.path.join(os.path.dirname(path), ".mesh.tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def cpu_ns(pid):
    """CPU time of every thread of pid so far (schedstat's first field, ns)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass  # a thread that ended: its time is lost to both readings
    return total


HIST = re.compile(r"^envoy_(\S*?update_duration)_(sum|count)\{?(.*?)\}? (\S+)$")


def durations(admin):
    """Cumulative update_duration sum (ms) and count per kind: rds, cds, eds."""
    out = {}
    for line in tax.get(admin, "/stats/prometheus?usedonly&filter=update_duration", timeout=10).splitlines():
        m = HIST.match(line)
        if not m:
            continue
        name, what, labels, value = m.groups()
        kind = "rds" if "rds" in name else "cds" if "cds" in name else "lds" if "lds" in name else "eds"
        if kind == "eds" and "cluster" not in name:
            kind = "other"
        cur = out.setdefault(kind, [0.0, 0.0])
        cur[0 if what == "sum" else 1] += float(value)
    return out


def flushed(admin):
    """Asks for a stats flush (stats_flush_on_admin) and gives it time to merge."""
    tax.get(admin, "/stats?filter=^server.state$")
    time.sleep(0.1)
    return admin


def growth(before, after):
    return {k: round(after[k][0] - before.get(k, [0, 0])[0], 3) for k in after
            if after[k][1] > before.get(k, [0, 0])[1]}


def route_version(admin):
    body = tax.get(admin, "/config_dump?resource=dynamic_route_configs", timeout=10)
    m = re.search(r'"x-config-version",\s*"value":\s*"(\d+)"', body)
    return int(m.group(1)) if m else None


def wait_until(pred, limit, what):
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            if pred():
                return
        except OSError:
            pass  # the admin port is not listening yet
        time.sleep(0.02)
    sys.exit(f"timed out: {what}")


def live(work, trellis, n, updates, change="both"):
    """Phase 1: per-type apply time of real pushes; returns the config dump."""
    mesh = os.path.join(work, "mesh")
    os.makedirs(mesh, exist_ok=True)
    cfg = os.path.join(mesh, "mesh.yaml")
    write_mesh_file(cfg, mesh_yaml(n, 0))
    xds, cp_admin, admin = tax.free_port(), tax.free_port(), tax.free_port()
    serve = subprocess.Popen([trellis, "serve", "--config", mesh, "--state-dir", os.path.join(work, "state"),
                              "--insecure-xds", "--xds-addr", f"127.0.0.1:{xds}", "--admin-addr", f"127.0.0.1:{cp_admin}"],
                             stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "serve.log"), "w"))
    envoy = None
    try:
        boot = os.path.join(work, "boot.yaml")
        subprocess.run([trellis, "bootstrap", "--service", "client", "--app-port", str(tax.free_port()),
                        "--inbound-port", str(tax.free_port()), "--outbound-port", str(tax.free_port()),
                        "--admin-port", str(admin), "--stats-port", str(tax.free_port()),
                        "--xds-addr", f"127.0.0.1:{xds}", "-o", boot], check=True)
        envoy = subprocess.Popen([tax.ENVOY, "-c", boot, "--disable-hot-restart", "--concurrency", "2",
                                  "--log-level", "warn"], stdout=subprocess.DEVNULL,
                                 stderr=open(os.path.join(work, "live.log"), "w"))
        tax.settle(envoy, admin, least=n)
        wait_until(lambda: route_version(admin) == 0, 60, "route version 0")
        rows = []
        time.sleep(5.5)  # histograms are merged at the stats flush, every 5 s
        start = durations(admin)
        # A fixed window per update, and an idle one to subtract: polling
        # Envoy's admin for the new version would cost Envoy more CPU than
        # the update (a config dump of 1,000 virtual hosts per poll).
        window = 1 + n / 500
        for v in range(1, updates + 1):
            time.sleep(0.3)
            c0 = cpu_ns(envoy.pid)
            write_mesh_file(cfg, mesh_yaml(n, v, change))
            time.sleep(window)
            c1 = cpu_ns(envoy.pid)
            if change != "endpoints" and route_version(admin) != v:
                sys.exit(f"update {v} not applied within {window} s")
            time.sleep(0.5)
            i0 = cpu_ns(envoy.pid)
            time.sleep(window)
            idle = cpu_ns(envoy.pid) - i0
            rows.append({"cpu_ms": (c1 - c0 - idle) / 1e6, "idle_cpu_ms": idle / 1e6})
        time.sleep(5.5)
        end = durations(admin)
        for kind, ms in growth(start, end).items():
            rows[0][kind + "_mean_ms"] = ms / updates
        heap = tax.stat(admin, "server.memory_allocated")
        dump = json.loads(tax.get(admin, "/config_dump?include_eds", timeout=60))
        return rows, heap, dump
    finally:
        for p in (envoy, serve):
            if p:
                p.kill()
                p.wait()


# ---------------------------------------------------------------- variants of the outbound routes

def service_vhosts(rc):
    return [vh for vh in rc["virtual_hosts"] if vh["domains"] != ["*"]]


def no_connect(rc):
    for vh in service_vhosts(rc):
        vh["routes"] = [r for r in vh["routes"] if "connect_matcher" not in r["match"]]


def domains_where(pred):
    def make(rc):
        for vh in service_vhosts(rc):
            vh["domains"] = [d for d in vh["domains"] if pred(d)] or vh["domains"][:1]
    return make


def vhost_retry(rc):
    for vh in service_vhosts(rc):
        policies = [r["route"].pop("retry_policy") for r in vh["routes"] if "retry_policy" in r.get("route", {})]
        if policies:
            vh["retry_policy"] = policies[0]


def each_route(fn):
    def make(rc):
        for vh in service_vhosts(rc):
            for r in vh["routes"]:
                fn(r)
    return make


def no_retry(r):
    r.get("route", {}).pop("retry_policy", None)


def no_host_predicate(r):
    rp = r.get("route", {}).get("retry_policy", {})
    rp.pop("retry_host_predicate", None)
    rp.pop("host_selection_retry_max_attempts", None)


def bare_route(r):
    """Only what routes: the match, the cluster (and a header rule's headers)."""
    r.pop("name", None)
    action = r.get("route", {})
    for k in ("timeout", "retry_policy"):
        action.pop(k, None)


def one_vhost(rc):
    """go-control-plane's bench shape: one `*` virtual host, a prefix route per service."""
    routes = []
    for vh in service_vhosts(rc):
        for r in vh["routes"]:
            if "prefix" in r["match"]:
                r = copy.deepcopy(r)
                r["match"] = {"prefix": "/" + vh["name"].split(".")[0]}
                routes.append(r)
    header = next(vh for vh in service_vhosts(rc) if vh["name"].startswith("svc-0."))
    rc["virtual_hosts"] = [{"name": "all", "domains": ["*"], "routes": routes + [{"match": {"prefix": "/"},
                           "route": {"cluster": "PassthroughCluster"}}]}]
    for k in ("response_headers_to_add",):
        if k in header:
            rc["virtual_hosts"][0][k] = header[k]


VARIANTS = {
    "whole": lambda rc: None,
    "no-connect": no_connect,
    "bare-domains": domains_where(lambda d: not re.search(r":\d+$", d)),
    "port-domains": domains_where(lambda d: re.search(r":\d+$", d)),
    "one-domain": lambda rc: [vh.__setitem__("domains", vh["domains"][:1]) for vh in service_vhosts(rc)],
    "vhost-retry": vhost_retry,
    "no-host-predicate": each_route(no_host_predicate),
    "no-retry": each_route(no_retry),
    "bare-routes": each_route(bare_route),
    "bare-no-connect": lambda rc: (no_connect(rc), each_route(bare_route)(rc)),
    "one-vhost": one_vhost,
}


def reject_prefixes(*prefixes):
    """Puts prefix patterns first in the bootstrap's exclusion list (making
    one if there is none): Envoy can reject those on the encoded stat name,
    without turning it into a string for the regex."""
    def make(boot):
        config = boot.setdefault("stats_config", {})
        patterns = config.setdefault("stats_matcher", {"exclusion_list": {"patterns": []}})["exclusion_list"]["patterns"]
        patterns[:0] = [{"prefix": p} for p in prefixes]
    return make


# Variants of the bootstrap, each replayed in its own Envoy (`--boot`).
BOOT_VARIANTS = {
    "trellis": lambda b: None,
    "no-stats-matcher": lambda b: b.get("stats_config", {}).pop("stats_matcher", None),
    "no-stats-config": lambda b: b.pop("stats_config", None),
    "reject-vhost-stats": reject_prefixes("vhost."),
}


def set_version(rc, v):
    """Every variant carries the update's number in svc-0's response header."""
    text = json.dumps(rc)
    return re.sub(r'("x-config-version",\s*"value":\s*")\d+"', lambda m: f'{m.group(1)}{v}"', text)


# ---------------------------------------------------------------- replay

def replay_bin(path):
    if path and os.path.exists(path):
        return path
    out = path or os.path.join(PEERS, "bin", "rds-replay")
    goroot = os.path.join(PEERS, "root/usr/lib/go-1.26")
    env = dict(os.environ, GOROOT=goroot, GOPATH=os.path.join(PEERS, "root/usr/share/gocode"), GO111MODULE="off",
               GOPROXY="off", GOFLAGS="", GOTOOLCHAIN="local", CGO_ENABLED="0", GOCACHE=os.path.join(PEERS, "gocache"))
    subprocess.run([os.path.join(goroot, "bin/go"), "build", "-o", out, os.path.join(HERE, "rds-replay/main.go")],
                   check=True, env=env, cwd="/tmp")
    return out


def ads_bootstrap(dump, admin, xds, key, crt):
    """The dumped sidecar as static config whose `outbound` routes come over ADS."""
    boot = tax.static_bootstrap(dump, admin, key, crt)
    outbound = None
    for l in boot["static_resources"]["listeners"]:
        for chain in l.get("filter_chains", []):
            for flt in chain.get("filters", []):
                tc = flt.get("typed_config", {})
                if tc.get("route_config", {}).get("name") == "outbound":
                    outbound = tc.pop("route_config")
                    tc["rds"] = {"route_config_name": "outbound",
                                 "config_source": {"ads": {}, "resource_api_version": "V3"}}
    boot["node"]["id"] = "bench"
    # Histograms and the heap gauge are merged at a stats flush: flush when
    # asked (flushed()), not on a timer whose work would land in the CPU time.
    boot.pop("stats_flush_interval", None)
    boot["stats_flush_on_admin"] = True
    boot["dynamic_resources"] = {"ads_config": {"api_type": "GRPC", "transport_api_version": "V3",
                                                "grpc_services": [{"envoy_grpc": {"cluster_name": "rds_replay"}}]}}
    boot["static_resources"]["clusters"].append({
        "name": "rds_replay", "type": "STATIC", "connect_timeout": "1s",
        "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {}}}},
        "load_assignment": {"cluster_name": "rds_replay", "endpoints": [{"lb_endpoints": [{"endpoint": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": xds}}}}]}]}})
    return boot, outbound


class Replay:
    """rds-replay and one Envoy fed by it."""

    def __init__(self, work, binary, boot, admin, xds):
        self.work, self.admin, self.n = work, admin, 0
        self.server = subprocess.Popen([binary, "-addr", f"127.0.0.1:{xds}"], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, stderr=open(os.path.join(work, "replay.log"), "w"),
                                       text=True, bufsize=1)
        self.envoy = tax.start_envoy(work, "replay", boot, 2)

    def send(self, text):
        self.n += 1
        path = os.path.join(self.work, f"rc-{self.n % 2}.json")
        with open(path, "w") as f:
            f.write(text)
        self.server.stdin.write(f"{self.n} {path}\n")
        line = self.server.stdout.readline().split()
        if not line or line[0] != "ack":
            sys.exit(f"route configuration refused: {' '.join(line)}")
        return int(line[2]) / 1000

    def close(self):
        for p in (self.envoy, self.server):
            p.kill()
            p.wait()


def replay(work, binary, dump, variants, rounds, boots=("trellis",)):
    """Rows per (bootstrap variant, route variant)."""
    key, crt = tax.certs(work)
    _, outbound = ads_bootstrap(dump, 0, 0, key, crt)
    shapes = {}
    for v in variants:
        rc = copy.deepcopy(outbound)
        VARIANTS[v](rc)
        shapes[v] = rc
    replays = {}
    try:
        for b in boots:
            admin, xds = tax.free_port(), tax.free_port()
            boot, _ = ads_bootstrap(dump, admin, xds, key, crt)
            BOOT_VARIANTS[b](boot)
            sub = os.path.join(work, f"boot-{b}")
            os.makedirs(sub, exist_ok=True)
            replays[b] = Replay(sub, binary, boot, admin, xds)
        for r in replays.values():
            wait_until(lambda: r.envoy.poll() is None and tax.stat(r.admin, "server.state") is not None, 60,
                       "envoy admin")
            r.send(set_version(shapes[variants[0]], 0))
            tax.settle(r.envoy, r.admin)
        pairs = [(b, v) for b in boots for v in variants]
        rows = {p: [] for p in pairs}
        for i in range(rounds + 1):
            for b, v in pairs[i % len(pairs):] + pairs[:i % len(pairs)]:
                r = replays[b]
                text = set_version(shapes[v], r.n + 1)
                time.sleep(0.2)
                d0 = durations(flushed(r.admin))
                c0 = cpu_ns(r.envoy.pid)
                wall = r.send(text)
                time.sleep(0.3)  # the old configuration is released on the workers
                c1, d1 = cpu_ns(r.envoy.pid), durations(flushed(r.admin))
                if i == 0:
                    continue  # the first round warms every variant up
                rows[(b, v)].append({"wall_ms": wall, "cpu_ms": (c1 - c0) / 1e6,
                                     "rds_ms": growth(d0, d1).get("rds"),
                                     "heap": tax.stat(flushed(r.admin), "server.memory_allocated")})
    finally:
        for r in replays.values():
            r.close()
    return rows


def med(rows, key):
    xs = [x[key] for x in rows if x.get(key) is not None]
    return round(statistics.median(xs), 3) if xs else None


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trellis")
    ap.add_argument("--services", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--updates", type=int, default=20, help="live updates, and replay rounds (one update per variant)")
    ap.add_argument("--replay-bin")
    ap.add_argument("--change", choices=["both", "route", "endpoints"], default="both",
                    help="what the live updates change (the replay always changes the routes)")
    ap.add_argument("--live-only", action="store_true", help="skip the replay")
    ap.add_argument("--keep", metavar="DIR", help="keep the work files (mesh, logs, dumps) under DIR")
    ap.add_argument("--boot", default="trellis", type=lambda s: s.split(","),
                    help="comma-separated bootstrap variants to replay under, side by side (the first is the "
                    f"baseline): {', '.join(BOOT_VARIANTS)}")
    ap.add_argument("variants", nargs="*", default=list(VARIANTS))
    args = ap.parse_args()
    if unknown := [b for b in args.boot if b not in BOOT_VARIANTS]:
        ap.error(f"unknown bootstrap variant: {', '.join(unknown)}")
    binary = replay_bin(args.replay_bin)
    variants = args.variants if args.variants[0] == "whole" else ["whole"] + args.variants
    print(json.dumps({"load": os.getloadavg()}), flush=True)
    for n in args.services:
        with tempfile.TemporaryDirectory() as tmp:
            work = os.path.join(args.keep, str(n)) if args.keep else tmp
            os.makedirs(work, exist_ok=True)
            rows, heap, dump = live(work, args.trellis, n, args.updates, args.change)
            summary = {"services": n, "phase": "live", "change": args.change, "updates": len(rows), "heap": heap}
            for key in sorted({k for r in rows for k in r}):
                summary[key] = med(rows, key)
            print(json.dumps(summary), flush=True)
            if args.live_only:
                continue
            by = replay(work, binary, dump, variants, args.updates, args.boot)
            base = statistics.median(x["heap"] for x in by[(args.boot[0], "whole")])
            base_cpu = med(by[(args.boot[0], "whole")], "cpu_ms")
            for b, v in by:
                heap = statistics.median(x["heap"] for x in by[(b, v)])
                cpu = med(by[(b, v)], "cpu_ms")
                print(json.dumps({"services": n, "phase": "replay", "boot": b, "variant": v, "updates": len(by[(b, v)]),
                                  "rds_ms": med(by[(b, v)], "rds_ms"), "cpu_ms": cpu,
                                  "cpu_vs_whole": round(cpu / base_cpu, 3) if cpu and base_cpu else None,
                                  "wall_ms": med(by[(b, v)], "wall_ms"), "heap": heap,
                                  "heap_vs_whole_per_service": round((heap - base) / n)}), flush=True)
            print(json.dumps({"load": os.getloadavg()}), flush=True)


if __name__ == "__main__":
    main()
