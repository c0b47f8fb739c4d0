#!/usr/bin/env python3
"""What a whole Trellis sidecar costs Envoy's memory beyond its clusters.

Runs `trellis serve` on N services (one HTTP port, one static endpoint each,
as bench/proxy-tax.sh writes them) and one sidecar (`trellis bootstrap`,
service `client`, whose default scope reaches every service), waits until
its clusters settle, reads Envoy's heap (`server.memory_allocated`) and
`VmRSS`, and takes `/config_dump?include_eds`. Then it stops both and
replays that very config from a static bootstrap (EDS clusters as STATIC
with their endpoints inline, RDS as inline route configurations, SDS
secrets as static ones from a throwaway certificate), once whole and once
per variant with one part removed or reduced, each in a fresh Envoy, so
each part's cost is the difference in heap.

Usage: bench/sidecar-tax.py [--services N] [--concurrency C] [--keep FILE] TRELLIS_BIN [VARIANT...]
Every process is started and killed by its own PID; every wait is bounded.
"""
import argparse
import copy
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ENVOY = os.environ.get("ENVOY_BIN", "envoy")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def get(port, path, timeout=5):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
        return r.read().decode()


def stat(admin, name):
    line = get(admin, f"/stats?filter=^{name}$").strip()
    return int(line.split(": ")[1]) if line else None


def settle(proc, admin, least=0, limit=300):
    """Polls until at least `least` clusters are active and their count and the heap hold still for 2 s."""
    deadline, last, stable = time.time() + limit, None, 0
    while time.time() < deadline and stable < 10:
        time.sleep(0.2)
        if proc.poll() is not None:
            sys.exit(f"envoy exited: see {proc.args}")
        try:
            active = stat(admin, "cluster_manager.active_clusters")
            warming = stat(admin, "cluster_manager.warming_clusters")
            heap = stat(admin, "server.memory_allocated")
        except OSError:
            continue
        # The cluster count, not the heap: a live sidecar's heap moves a
        # little with every stats flush and xDS exchange.
        ok = warming == 0 and (active or 0) >= least and heap and active == (last or (None,))[0]
        stable = stable + 1 if ok else 0
        last = (active, heap)
    with open(f"/proc/{proc.pid}/status") as f:
        rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS"))
    return {"clusters": last[0] if last else None, "heap_allocated_bytes": last[1] if last else None, "rss_kb": rss}


def write_mesh(d, n):
    os.makedirs(d, exist_ok=True)
    for i in range(n):
        with open(os.path.join(d, f"svc-{i}.yaml"), "w") as f:
            f.write(f"apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: svc-{i}\nspec:\n"
                    f"  hosts: [svc-{i}]\n  ports:\n  - {{number: 80, name: http, protocol: HTTP}}\n"
                    f"  resolution: STATIC\n  endpoints:\n  - address: 10.{(i >> 8) & 255}.{i & 255}.1\n")


def start_envoy(work, name, bootstrap, concurrency):
    path = os.path.join(work, f"{name}.json")
    with open(path, "w") as f:
        json.dump(bootstrap, f)
    log = open(os.path.join(work, f"{name}.log"), "w")
    return subprocess.Popen([ENVOY, "-c", path, "--disable-hot-restart", "--drain-strategy", "immediate",
                             "--concurrency", str(concurrency), "--log-level", "warn"],
                            stdout=subprocess.DEVNULL, stderr=log)


def live_sidecar(work, trellis, n, concurrency):
    """The sidecar fed by `trellis serve`: its figures and its config dump."""
    mesh = os.path.join(work, "mesh")
    write_mesh(mesh, n)
    xds, cp_admin, admin = free_port(), free_port(), free_port()
    serve = subprocess.Popen([trellis, "serve", "--config", mesh, "--state-dir", os.path.join(work, "state"),
                              "--insecure-xds", "--xds-addr", f"127.0.0.1:{xds}", "--admin-addr", f"127.0.0.1:{cp_admin}"],
                             stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "serve.log"), "w"))
    envoy = None
    try:
        boot = os.path.join(work, "boot.yaml")
        subprocess.run([trellis, "bootstrap", "--service", "client", "--app-port", str(free_port()),
                        "--inbound-port", str(free_port()), "--outbound-port", str(free_port()),
                        "--admin-port", str(admin), "--stats-port", str(free_port()),
                        "--xds-addr", f"127.0.0.1:{xds}", "-o", boot], check=True)
        with open(boot) as f:
            text = f.read()
        envoy = subprocess.Popen([ENVOY, "-c", boot, "--disable-hot-restart", "--concurrency", str(concurrency),
                                  "--log-level", "warn"], stdout=subprocess.DEVNULL,
                                 stderr=open(os.path.join(work, "live.log"), "w"))
        figures = settle(envoy, admin, least=n)
        dump = json.loads(get(admin, "/config_dump?include_eds", timeout=30))
        return figures, dump, text
    finally:
        for p in (envoy, serve):
            if p:
                p.kill()
                p.wait()


def section(dump, suffix):
    return next(c for c in dump["configs"] if c["@type"].split(".")[-1] == suffix)


def strip_key(v, key):
    if isinstance(v, dict):
        v.pop(key, None)
        for c in v.values():
            strip_key(c, key)
    elif isinstance(v, list):
        for c in v:
            strip_key(c, key)


def static_bootstrap(dump, admin, key, crt):
    """The dumped config as one static bootstrap."""
    boot = copy.deepcopy(section(dump, "BootstrapConfigDump")["bootstrap"])
    boot.pop("dynamic_resources", None)
    boot["admin"]["address"]["socket_address"]["port_value"] = admin
    statics = boot.setdefault("static_resources", {})
    eds = {e["endpoint_config"]["cluster_name"]: e["endpoint_config"]
           for e in section(dump, "EndpointsConfigDump").get("dynamic_endpoint_configs", [])}
    clusters = [c for c in statics.get("clusters", []) if "xds" not in c["name"]]
    for dc in section(dump, "ClustersConfigDump").get("dynamic_active_clusters", []):
        c = copy.deepcopy(dc["cluster"])
        c.pop("@type", None)
        if c.get("type") == "EDS":
            c["type"] = "STATIC"
            c.pop("eds_cluster_config", None)
            c["load_assignment"] = {k: v for k, v in eds.get(c["name"], {"cluster_name": c["name"]}).items()
                                    if k != "@type"}
        clusters.append(c)
    statics["clusters"] = clusters
    routes = {r["route_config"]["name"]: r["route_config"]
              for r in section(dump, "RoutesConfigDump").get("dynamic_route_configs", [])}
    listeners = statics.setdefault("listeners", [])
    for dl in section(dump, "ListenersConfigDump").get("dynamic_listeners", []):
        listener = copy.deepcopy(dl["active_state"]["listener"])
        listener.pop("@type", None)
        for chain in listener.get("filter_chains", []):
            for flt in chain.get("filters", []):
                tc = flt.get("typed_config", {})
                if "rds" in tc:
                    rc = dict(routes[tc.pop("rds")["route_config_name"]])
                    rc.pop("@type", None)
                    tc["route_config"] = rc
        listeners.append(listener)
    strip_key(boot, "sds_config")
    for c in clusters:
        for loc in c.get("load_assignment", {}).get("endpoints", []):
            if not loc.get("load_balancing_weight"):
                loc.pop("load_balancing_weight", None)  # the dump shows the unset 0, which is invalid
    statics["secrets"] = [
        {"name": "default", "tls_certificate": {"certificate_chain": {"filename": crt}, "private_key": {"filename": key}}},
        {"name": "ROOTCA", "validation_context": {"trusted_ca": {"filename": crt}}},
    ]
    return boot


def outbound_routes(boot):
    for l in boot["static_resources"]["listeners"]:
        for chain in l.get("filter_chains", []):
            for flt in chain.get("filters", []):
                rc = flt.get("typed_config", {}).get("route_config")
                if rc and rc.get("name") == "outbound":
                    yield rc


def no_outbound_vhosts(boot):
    for rc in outbound_routes(boot):
        rc["virtual_hosts"] = rc["virtual_hosts"][-1:]


def one_domain(boot):
    for rc in outbound_routes(boot):
        for vh in rc["virtual_hosts"]:
            vh["domains"] = vh["domains"][:1]


def no_retry_policy(boot):
    for rc in outbound_routes(boot):
        for vh in rc["virtual_hosts"]:
            vh.pop("retry_policy", None)
            for r in vh.get("routes", []):
                r.get("route", {}).pop("retry_policy", None)


def vhost_retry_policy(boot):
    # The same retry policy once per virtual host instead of once per route.
    for rc in outbound_routes(boot):
        for vh in rc["virtual_hosts"]:
            policies = [r["route"].pop("retry_policy") for r in vh.get("routes", []) if "retry_policy" in r.get("route", {})]
            if policies:
                vh["retry_policy"] = policies[0]


def retry_no_host_predicate(boot):
    for rc in outbound_routes(boot):
        for vh in rc["virtual_hosts"]:
            for r in vh.get("routes", []):
                rp = r.get("route", {}).get("retry_policy")
                if rp:
                    rp.pop("retry_host_predicate", None)
                    rp.pop("host_selection_retry_max_attempts", None)


def one_route_per_vhost(boot):
    for rc in outbound_routes(boot):
        for vh in rc["virtual_hosts"]:
            vh["routes"] = vh["routes"][-1:]


def no_listeners(boot):
    boot["static_resources"]["listeners"] = []


def no_stats_tags(boot):
    boot.pop("stats_config", None)


def drop_tags(pred):
    def make(boot):
        tags = boot.get("stats_config", {}).get("stats_tags", [])
        boot["stats_config"]["stats_tags"] = [t for t in tags if not pred(t)]
    return make


def reject_stats(*prefixes):
    """Envoy's `stats_matcher` rejecting stat names by prefix (before tag extraction)."""
    def make(boot):
        patterns = [{"prefix": p} for p in prefixes]
        boot.setdefault("stats_config", {})["stats_matcher"] = {"exclusion_list": {"patterns": patterns}}
    return make


def minimal_clusters(boot):
    keep = []
    for c in boot["static_resources"]["clusters"]:
        keep.append({"name": c["name"], "type": "STATIC", "connect_timeout": "10s",
                     "load_assignment": c.get("load_assignment", {"cluster_name": c["name"]})}
                    if c["name"].startswith("outbound|") else c)
    boot["static_resources"]["clusters"] = keep


def mtls_clusters(boot):
    """Every outbound cluster as if its endpoints were sidecars taking mTLS:
    the auto-mTLS transport socket matches `translate` adds then (the SDS
    secrets are the replay's static ones) and `tlsMode: istio` metadata on
    each endpoint."""
    for c in boot["static_resources"]["clusters"]:
        name = c["name"]
        if not name.startswith("outbound|") or "transport_socket_matches" in c:
            continue
        port, subset, host = name.split("|")[1:]
        tls = {"@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
               "common_tls_context": {
                   "combined_validation_context": {
                       "default_validation_context": {"match_typed_subject_alt_names": [{
                           "san_type": "URI", "matcher": {"exact": f"spiffe://cluster.local/ns/default/sa/{host.split('.')[0]}"}}]},
                       "validation_context_sds_secret_config": {"name": "ROOTCA"}},
                   "tls_certificate_sds_secret_configs": [{"name": "default"}]},
               "sni": f"outbound_.{port}_.{subset}_.{host}"}
        c["transport_socket_matches"] = [
            {"name": "tlsMode-istio", "match": {"tlsMode": "istio"},
             "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": tls}},
            {"name": "tlsMode-disabled", "match": {}, "transport_socket": {
                "name": "envoy.transport_sockets.raw_buffer",
                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"}}},
        ]
        for loc in c.get("load_assignment", {}).get("endpoints", []):
            for ep in loc.get("lb_endpoints", []):
                ep.setdefault("metadata", {}).setdefault("filter_metadata", {})["envoy.transport_socket_match"] = {
                    "tlsMode": "istio"}


VARIANTS = {
    "whole": lambda b: None,
    "mtls-clusters": mtls_clusters,
    "no-outbound-vhosts": no_outbound_vhosts,
    "one-domain-per-vhost": one_domain,
    "one-route-per-vhost": one_route_per_vhost,
    "no-retry-policy": no_retry_policy,
    "vhost-retry-policy": vhost_retry_policy,
    "retry-no-host-predicate": retry_no_host_predicate,
    "no-listeners": no_listeners,
    "no-stats-tags": no_stats_tags,
    "no-fixed-tags": drop_tags(lambda t: "fixed_value" in t),
    "no-cluster-name-tag": drop_tags(lambda t: t["tag_name"] == "cluster_name"),
    "no-destination-tags": drop_tags(lambda t: t["tag_name"].startswith("destination_")),
    "no-outbound-cluster-stats": reject_stats("cluster.outbound|"),
    "all-cluster-stats": lambda b: b.get("stats_config", {}).pop("stats_matcher", None),
    "minimal-clusters": minimal_clusters,
    "minimal-clusters-no-listeners": lambda b: (minimal_clusters(b), no_listeners(b)),
}


def certs(work):
    key, crt = os.path.join(work, "k.pem"), os.path.join(work, "c.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", crt, "-days", "2", "-subj", "/CN=bench"],
                   check=True, capture_output=True)
    return key, crt


def main():
    # SIGTERM runs the `finally` blocks that kill the children, as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trellis")
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--keep", metavar="FILE", help="write the whole static bootstrap to FILE and keep the work files "
                    "(mesh, state, logs, config dump, variant bootstraps) in its directory")
    ap.add_argument("variants", nargs="*", default=list(VARIANTS))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        if args.keep:
            work = os.path.dirname(os.path.abspath(args.keep))
        live, dump, _ = live_sidecar(work, args.trellis, args.services, args.concurrency)
        if args.keep:
            with open(os.path.join(work, "dump.json"), "w") as f:
                json.dump(dump, f)
        live["variant"] = "live (ADS)"
        print(json.dumps(live), flush=True)
        key, crt = certs(work)
        base = None
        for v in args.variants:
            admin = free_port()
            boot = static_bootstrap(dump, admin, key, crt)
            VARIANTS[v](boot)
            if args.keep and v == "whole":
                with open(args.keep, "w") as f:
                    json.dump(boot, f, indent=1)
            proc = start_envoy(work, v, boot, args.concurrency)
            try:
                r = settle(proc, admin, least=args.services)
            finally:
                proc.kill()
                proc.wait()
            r["variant"] = v
            if v == "whole":
                base = r
            if base:
                r["heap_vs_whole"] = round(r["heap_allocated_bytes"] / base["heap_allocated_bytes"], 3)
                r["heap_delta_per_service"] = round((base["heap_allocated_bytes"] - r["heap_allocated_bytes"]) / args.services)
            print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
