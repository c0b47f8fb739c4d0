#!/usr/bin/env python3
"""What each part of Trellis's outbound cluster costs in Envoy's memory.

Starts one Envoy 1.40 per variant from a static bootstrap holding N clusters
(default 1,000) with one endpoint each, waits until every cluster is active,
and prints Envoy's heap gauge `server.memory_allocated` and `VmRSS`, against
the same figures for N minimal clusters (name, STATIC, one endpoint). The
Trellis cluster is the shape `translate::clusters` makes for a MESH_INTERNAL
STATIC service without a DestinationRule (istiod's): circuit breakers with
the mesh's retry budget, LEAST_REQUEST, auto-mTLS transport socket
matches (SDS secrets `default`/`ROOTCA`, given statically here since there is
no control plane), endpoint metadata `tlsMode`. `minimal-mtls` is what a
hand-written mTLS mesh has: the minimal cluster with one TLS transport socket
(the same SDS certificate, root and SAN), so that `trellis` against it is what
Trellis adds over any mTLS mesh. Each `no-` variant removes
one part; `with-` variants add what a DestinationRule or an h2 port adds.
The cluster is STATIC with its assignment inline instead of EDS (no control
plane); Envoy keeps the same host and cluster objects either way.

Usage: bench/cluster-tax.py [--clusters N] [--runs R] [--concurrency C] [VARIANT...]
Every Envoy is started and killed by its own PID.
"""
import argparse
import copy
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

SDS = None  # static secrets: no sds_config, so Envoy reads static_resources.secrets
TLS_SOCKET = {
    "name": "envoy.transport_sockets.tls",
    "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        "common_tls_context": {
            "combined_validation_context": {
                "default_validation_context": {
                    "match_typed_subject_alt_names": [{
                        "matcher": {"exact": "spiffe://cluster.local/ns/default/sa/svc-{i}"},
                        "san_type": "URI",
                    }]
                },
                "validation_context_sds_secret_config": {"name": "ROOTCA"},
            },
            "tls_certificate_sds_secret_configs": [{"name": "default"}],
        },
        "sni": "outbound_.80_._.svc-{i}.default.svc.cluster.local",
    },
}
RAW = {
    "name": "envoy.transport_sockets.raw_buffer",
    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"},
}


def minimal(i):
    return {
        "name": f"outbound|80||svc-{i}.default.svc.cluster.local",
        "type": "STATIC",
        "connect_timeout": "10s",
        "load_assignment": {
            "cluster_name": f"outbound|80||svc-{i}.default.svc.cluster.local",
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {
                "address": f"10.{(i >> 8) & 255}.{i & 255}.1", "port_value": 80}}}}]}],
        },
    }


def trellis(i):
    c = minimal(i)
    c.update({
        "lb_policy": "LEAST_REQUEST",
        "circuit_breakers": {"thresholds": [{
            "max_connections": 4294967295, "max_pending_requests": 4294967295,
            "max_requests": 4294967295, "max_retries": 4294967295, "track_remaining": True,
            "retry_budget": {"budget_percent": {"value": 20.0}, "min_retry_concurrency": 10},
        }]},
        "transport_socket_matches": [
            {"name": "tlsMode-istio", "match": {"tlsMode": "istio"},
             "transport_socket": json.loads(json.dumps(TLS_SOCKET).replace("{i}", str(i)))},
            {"name": "tlsMode-disabled", "match": {}, "transport_socket": RAW},
        ],
    })
    lb = c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
    lb["load_balancing_weight"] = 1
    lb["metadata"] = {"filter_metadata": {"envoy.transport_socket_match": {"tlsMode": "istio"}}}
    return c


def with_outlier(i):
    # What a DestinationRule with `outlierDetection` adds.
    c = trellis(i)
    c["outlier_detection"] = {
        "base_ejection_time": "60s", "consecutive_5xx": 5, "enforcing_consecutive_5xx": 100,
        "enforcing_success_rate": 0, "interval": "30s",
    }
    c["common_lb_config"] = {"healthy_panic_threshold": {}}
    return c


def with_h2(i):
    # What an HTTP/2 or gRPC port adds.
    c = trellis(i)
    c["typed_extension_protocol_options"] = {
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {}},
        }
    }
    return c


def without(*keys):
    def make(i):
        c = trellis(i)
        for k in keys:
            c.pop(k, None)
        return c
    return make


def no_metadata(i):
    c = trellis(i)
    c["load_assignment"]["endpoints"][0]["lb_endpoints"][0].pop("metadata")
    return c


def no_budget(i):
    c = trellis(i)
    c["circuit_breakers"]["thresholds"][0].pop("retry_budget")
    return c


def no_tracking(i):
    c = trellis(i)
    c["circuit_breakers"]["thresholds"][0]["track_remaining"] = False
    return c


def minimal_mtls(i):
    # A hand-written mTLS mesh's cluster: the minimal one with one TLS
    # transport socket (SDS certificate and root, the peer's SAN checked),
    # no matches, no policy.
    c = minimal(i)
    c["transport_socket"] = json.loads(json.dumps(TLS_SOCKET).replace("{i}", str(i)))
    return c


def tls_only(i):
    c = minimal(i)
    c["transport_socket_matches"] = trellis(i)["transport_socket_matches"]
    return c


VARIANTS = {
    "minimal": minimal,
    "minimal-mtls": minimal_mtls,
    "trellis": trellis,
    "no-tls-matches": without("transport_socket_matches"),
    "no-circuit-breakers": without("circuit_breakers"),
    "no-retry-budget": no_budget,
    "no-track-remaining": no_tracking,
    "no-least-request": without("lb_policy"),
    "with-outlier": with_outlier,
    "with-h2": with_h2,
    "no-endpoint-metadata": no_metadata,
    "tls-matches-only": tls_only,
}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def certs(work):
    key, crt = os.path.join(work, "k.pem"), os.path.join(work, "c.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", crt, "-days", "2", "-subj", "/O=bench"],
                   check=True, capture_output=True)
    return key, crt


def bootstrap(make, n, admin, key, crt):
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "clusters": [make(i) for i in range(n)],
            "secrets": [
                {"name": "default", "tls_certificate": {
                    "certificate_chain": {"filename": crt}, "private_key": {"filename": key}}},
                {"name": "ROOTCA", "validation_context": {"trusted_ca": {"filename": crt}}},
            ],
        },
    }


def stat(admin, name):
    url = f"http://127.0.0.1:{admin}/stats?filter=^{name}$"
    with urllib.request.urlopen(url, timeout=2) as r:
        line = r.read().decode().strip()
    return int(line.split(": ")[1]) if line else None


def measure(work, variant, n, concurrency, key, crt):
    admin = free_port()
    path = os.path.join(work, f"{variant}.json")
    with open(path, "w") as f:
        json.dump(bootstrap(VARIANTS[variant], n, admin, key, crt), f)
    proc = subprocess.Popen([os.environ.get("ENVOY_BIN", "envoy"), "-c", path, "--disable-hot-restart",
                             "--concurrency", str(concurrency), "--log-level", "warn"],
                            stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, f"{variant}.log"), "w"))
    try:
        deadline, last, stable = time.time() + 120, None, 0
        while time.time() < deadline and stable < 10:
            time.sleep(0.2)
            if proc.poll() is not None:
                sys.exit(f"envoy exited for {variant}: see {work}/{variant}.log")
            try:
                active, heap = stat(admin, "cluster_manager.active_clusters"), stat(admin, "server.memory_allocated")
            except OSError:
                continue
            stable = stable + 1 if (active == n and heap == last) else 0
            last = heap
        with open(f"/proc/{proc.pid}/status") as f:
            rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS"))
        return {"variant": variant, "clusters": n, "heap_allocated_bytes": last, "rss_kb": rss}
    finally:
        proc.kill()
        proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clusters", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--concurrency", type=int, default=2, help="Envoy worker threads (Istio's sidecar default: 2)")
    ap.add_argument("variants", nargs="*", default=list(VARIANTS))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        key, crt = certs(work)
        base = {}
        for _ in range(args.runs):
            for v in args.variants:
                r = measure(work, v, args.clusters, args.concurrency, key, crt)
                if v in ("minimal", "minimal-mtls"):
                    base[v] = r
                for b, ref in base.items():
                    r[f"heap_vs_{b}"] = round(r["heap_allocated_bytes"] / ref["heap_allocated_bytes"], 3)
                    r[f"rss_vs_{b}"] = round(r["rss_kb"] / ref["rss_kb"], 3)
                print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
