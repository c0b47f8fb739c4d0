#!/usr/bin/env python3
"""The peer push benchmark (`../shared/bench/compare.py`) without loading the measured Envoy.

`../shared/bench/trellis_push.py` polls Envoy's `/config_dump?resource=dynamic_route_configs`
every 10 ms while it waits for each update. Envoy serves the admin API on its main thread, the
same thread that applies xDS updates, and dumping the `outbound` route configuration costs it more
CPU than applying an update (about 289 ms against 32 ms per route-only update at N = 1,000,
`bench/route-shape.py`). So the Trellis rows of `compare.py` time an Envoy kept busy by its own
observer, while go-control-plane's rows (`ads_run.py`) read `/config_dump` only once at the end.

This script runs the same two programs with one change: before it asks Envoy for its routes, it
waits (polling Trellis's own `/metrics`, which costs Envoy nothing) until Trellis has counted the
update converged, i.e. every changed type ACKed. It then reads `/config_dump` once and takes
Envoy's own `last_updated` of the route, so "file → applied" is measured as before. Both peers
are run in the same invocation, as `compare.py` does.

    PEERS_DIR=/tmp/peers-bounds python3 bench/push-ackwait.py --trellis "$PWD/target/release/trellis" \\
        --clusters 1 100 1000 --updates 20 --runs 2

`--route-only` runs Trellis alone (delta and SotW) with every update changing only svc-0's route
(the endpoints keep their ports): issue 9's "route-only change at N = 100 under 10 ms".
`--endpoints-only` makes Trellis's updates move every endpoint and leave the route as it was, beside
go-control-plane's usual updates (both): issue 9's "all-endpoints change no slower than
go-control-plane".
"""
import argparse, json, os, re, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.environ.get("SHARED_BENCH", os.path.join(HERE, "..", "..", "shared", "bench"))


def patched_trellis_push():
    """trellis_push with `route_state` asking Envoy only after Trellis counted a convergence."""
    sys.path.insert(0, SHARED)
    import trellis_push as tp

    original, admin = tp.route_state, 18101  # the Trellis admin port trellis_push.one() uses
    seen = {"count": -1.0}

    def route_state(envoy_admin):
        count = tp.conv(admin)[1]
        if count <= seen["count"]:
            time.sleep(0.001)
            return None, None
        version, ts = original(envoy_admin)
        if version is not None:
            seen["count"] = count
        return version, ts

    tp.route_state = route_state
    return tp, seen


def endpoints_fixed(tp):
    """Make every update change the route only: the endpoints keep update 0's ports.

    `trellis_push.config(n, v)` puts service i's endpoint on port 30000 + i, or 31000 + i on odd
    updates (i < 1,000), and the update's number in svc-0's response header.
    """
    original = tp.config

    def config(n, v):
        fix = lambda m: f"http: {int(m.group(1)) % 1000 + 30000}"
        return re.sub(r"http: (3[01]\d\d\d)\b", fix, original(n, v))

    tp.config = config


def endpoints_only(tp):
    """Make every update change the endpoints only: svc-0's route keeps update 0's header.

    The route never shows the update, so an update counts as applied once Trellis counted one more
    convergence (every changed type ACKed) than before the file was written; its "file -> applied"
    is then the rename -> that count, seen within `trellis_push`'s 10 ms poll (coarse).
    """
    original, admin = tp.config, 18101
    last = {"v": 0, "count": 0.0}

    def config(n, v):
        last["v"], last["count"] = v, tp.conv(admin)[1]
        return original(n, v).replace(f'x-config-version: "{v}"', 'x-config-version: "0"')

    def route_state(envoy_admin):
        if tp.conv(admin)[1] > last["count"]:
            return last["v"], time.time()
        time.sleep(0.001)
        return None, None

    tp.config, tp.route_state = config, route_state


def run_trellis(argv):
    tp, seen = patched_trellis_push()
    ap = argparse.ArgumentParser()
    ap.add_argument("--trellis", required=True)
    ap.add_argument("--envoy", default=os.environ.get("ENVOY_BIN", "envoy"))
    ap.add_argument("--clusters", type=int, nargs="+")
    ap.add_argument("--updates", type=int)
    ap.add_argument("--interval-ms", type=int, default=200)
    ap.add_argument("--mode", choices=["delta", "sotw"])
    ap.add_argument("--route-only", action="store_true")
    ap.add_argument("--endpoints-only", action="store_true")
    a = ap.parse_args(argv)
    if a.route_only:
        endpoints_fixed(tp)
    if a.endpoints_only:
        endpoints_only(tp)
    for n in a.clusters:
        seen["count"] = -1.0  # a new `trellis serve` counts from zero
        print(json.dumps(tp.one(a, n)), flush=True)


def lines(cmd, cwd):
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd[:3])} failed: {out.stderr[-800:]}")
    return [json.loads(l) for l in out.stdout.splitlines() if l.startswith("{")]


def main():
    if sys.argv[1:2] == ["--one-trellis"]:
        return run_trellis(sys.argv[2:])
    ap = argparse.ArgumentParser()
    ap.add_argument("--trellis", required=True)
    ap.add_argument("--clusters", nargs="+", default=["1", "100", "1000"])
    ap.add_argument("--updates", default="20")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--route-only", action="store_true",
                    help="Trellis only: every update changes the route, never the endpoints")
    ap.add_argument("--endpoints-only", action="store_true",
                    help="Trellis's updates change every endpoint, never the route (go-control-plane's both)")
    a = ap.parse_args()
    envoy = os.environ.get("ENVOY_BIN") or subprocess.run(
        ["sh", "-c", "command -v envoy"], capture_output=True, text=True).stdout.strip()
    rows = []
    for _ in range(a.runs):
        gcp = [sys.executable, "ads_run.py", "--peer", "gcp", "--runs", "1", "--clusters", *a.clusters,
               "--updates", a.updates]
        for d in ([] if a.route_only else lines(gcp, SHARED)):
            rows.append(("go-control-plane", "sotw", d["clusters"], d["snapshot_to_all_acked"]["median_ms"],
                         None, d.get("server_rss_mib_sampled_externally"), d.get("envoy_rss_mib_with_config")))
        for mode in ("delta", "sotw"):
            cmd = [sys.executable, os.path.abspath(__file__), "--one-trellis", "--trellis", a.trellis,
                   "--envoy", envoy, "--mode", mode, "--clusters", *a.clusters, "--updates", a.updates]
            cmd += ["--route-only"] if a.route_only else []
            cmd += ["--endpoints-only"] if a.endpoints_only else []
            for d in lines(cmd, SHARED):
                rows.append(("trellis", mode, d["clusters"], d["server_ms_p50"], d["e2e_ms_p50"],
                             d["trellis_rss_mib"], d["envoy_rss_mib"]))
    print(f"{'peer':17} {'mode':5} {'N':>5} {'push->ACK ms':>12} {'file->applied ms':>16} "
          f"{'cp RSS MiB':>10} {'envoy RSS MiB':>13}")
    for p, m, n, s, e, rss, ers in sorted(rows, key=lambda x: (x[2], x[0], x[1])):
        f = lambda v: "-" if v is None else f"{v:.1f}"
        print(f"{p:17} {m:5} {n:>5} {f(s):>12} {f(e):>16} {f(rss):>10} {f(ers):>13}")


if __name__ == "__main__":
    main()
