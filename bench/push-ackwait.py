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
`--profile` adds where each update's time goes, for both peers in the same run: CPU per update of
Envoy's main thread (the thread that applies xDS; `/proc/PID/task/PID/schedstat`, nanoseconds) and
of the control plane (all its threads; `/proc/PID/stat`, 10 ms clock ticks, so meaningful summed over
20 updates at N >= 100), and for Trellis its rebuild's wall time (`snapshots
rebuilt ... elapsed`, from its debug log). Envoy's CPU is read just before each `/config_dump`
and after the previous one (Trellis) or from `/ready` to the final dump (go-control-plane), so the
observer's own dumps are not counted.
"""
import argparse, json, os, re, subprocess, sys, threading, time

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
        stop_profile()
        version, ts = original(envoy_admin)
        if version is not None:
            seen["count"] = count
        return version, ts

    tp.route_state = route_state
    return tp, seen


def cpu_ns(pid, main_only=False):
    """CPU time of a process (every thread, ended ones included; clock ticks) or of its main
    thread alone (nanoseconds), or None once the process has ended."""
    try:
        if main_only:
            with open(f"/proc/{pid}/task/{pid}/schedstat") as f:
                return int(f.read().split()[0])
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    except (FileNotFoundError, ProcessLookupError):
        return None


def minor_faults(pid):
    """Minor page faults of a process so far (Trellis's; go-control-plane exits too early)."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[7])
    except FileNotFoundError:
        return None


class Recorder:
    """Remembers the processes a bench starts (by what they run) and the CPU they spend."""

    def __init__(self):
        self.pids, self.logs = {}, {}
        self.envoy_ns = self.cp_ns = self.cp_last = self.cp_faults = 0
        self.mark = self.faults_mark = None
        real = subprocess.Popen
        recorder = self

        class Popen(real):
            def __init__(self, argv, *a, **k):
                super().__init__(argv, *a, **k)
                role = ("trellis" if "serve" in argv else "envoy" if "-c" in argv
                        else "gcp" if "gcp_bench" in argv[0] else None)
                if role:
                    recorder.pids[role] = self.pid
                    out = k.get("stdout")
                    recorder.logs[role] = getattr(out, "name", None)

        subprocess.Popen = Popen

    def sample(self):
        cp = self.pids.get("trellis") or self.pids.get("gcp")
        used = cpu_ns(cp) if cp else 0
        # gcp_bench exits before the final dump: its last reading while it ran stands for it.
        self.cp_last = self.cp_last if used is None else used
        return cpu_ns(self.pids["envoy"], main_only=True), self.cp_last

    def follow(self):
        """Keep reading the control plane's CPU every 20 ms while it runs (a daemon thread)."""
        def loop():
            while True:
                if self.mark is not None and self.pids.get("gcp"):
                    used = cpu_ns(self.pids["gcp"])
                    if used is not None:
                        self.cp_last = used
                time.sleep(0.02)
        threading.Thread(target=loop, daemon=True).start()

    def start(self):
        self.mark = self.sample()
        self.faults_mark = minor_faults(self.pids.get("trellis"))

    def stop(self):
        if self.mark is None:
            return
        envoy, cp = self.sample()
        self.envoy_ns += envoy - self.mark[0]
        self.cp_ns += cp - self.mark[1]
        faults = minor_faults(self.pids.get("trellis"))
        if faults is not None and self.faults_mark is not None:
            self.cp_faults += faults - self.faults_mark
        self.mark = None

    def report(self, updates):
        """Per-update figures, and Trellis's rebuild times from its debug log; then resets."""
        out = {"envoy_main_cpu_ms": round(self.envoy_ns / updates / 1e6, 2),
               "cp_cpu_ms": round(self.cp_ns / updates / 1e6, 2)}
        if self.pids.get("trellis"):
            out["cp_minor_faults"] = round(self.cp_faults / updates)
        log = self.logs.get("trellis")
        if log and os.path.exists(log):
            ms = [duration_ms(m.group(1)) for m in
                  re.finditer(r"snapshots rebuilt.*?elapsed=(\S+)", open(log).read())]
            ms = sorted(ms[-updates:])
            if ms:
                out["rebuild_ms_p50"] = round(ms[len(ms) // 2], 2)
        self.envoy_ns = self.cp_ns = self.cp_faults = 0
        self.pids, self.logs = {}, {}
        return out


def duration_ms(text):
    """A Rust `Duration` debug string (`12.3ms`, `950µs`, `1.2s`) in milliseconds."""
    for unit, scale in (("ms", 1.0), ("µs", 1e-3), ("us", 1e-3), ("ns", 1e-6), ("s", 1e3)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * scale
    raise ValueError(f"not a duration: {text}")


def profile_trellis(tp, recorder):
    """Count Envoy's and Trellis's CPU from each update's file write until Trellis counted it
    converged (`stop_profile`, called before any `/config_dump`)."""
    original_write = tp.write
    os.environ["RUST_LOG"] = os.environ.get("RUST_LOG", "info") + ",trellis::serve::snapshots=debug"

    def write(cfg, text):
        # The first write of each N comes before that N's Envoy starts: not an update.
        if recorder.pids.get("envoy") and os.path.basename(cfg) == "mesh.yaml":
            recorder.start()
        return original_write(cfg, text)

    tp.write = write


RECORDER = None


def stop_profile():
    if RECORDER:
        RECORDER.stop()


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
            stop_profile()
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
    ap.add_argument("--profile", action="store_true")
    a = ap.parse_args(argv)
    global RECORDER
    if a.profile:
        RECORDER = Recorder()
        profile_trellis(tp, RECORDER)
    if a.route_only:
        endpoints_fixed(tp)
    if a.endpoints_only:
        endpoints_only(tp)
    for n in a.clusters:
        seen["count"] = -1.0  # a new `trellis serve` counts from zero
        result = tp.one(a, n)
        if RECORDER:
            result.update(RECORDER.report(a.updates))
        print(json.dumps(result), flush=True)


def run_gcp(argv):
    """`ads_run.py --peer gcp` with Envoy's and gcp_bench's CPU counted from Envoy's `/ready`
    (the first config applied) to the first `/config_dump` after the last update."""
    global RECORDER
    sys.path.insert(0, SHARED)
    import ads_run, benchlib
    RECORDER = recorder = Recorder()
    recorder.follow()
    updates = int(argv[argv.index("--updates") + 1])
    ready, admin, emit = benchlib.Envoy.wait_ready, benchlib.Envoy.admin, benchlib.emit

    def wait_ready(self, *a, **k):
        t = ready(self, *a, **k)
        recorder.start()
        return t

    def admin_(self, path, *a, **k):
        if path.startswith("/config_dump"):
            recorder.stop()
        return admin(self, path, *a, **k)

    def emit_(obj):
        obj.update(recorder.report(updates))
        emit(obj)

    benchlib.Envoy.wait_ready, benchlib.Envoy.admin, benchlib.emit = wait_ready, admin_, emit_
    sys.argv = ["ads_run.py", *argv]
    ads_run.main()


def lines(cmd, cwd):
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd[:3])} failed: {out.stderr[-800:]}")
    return [json.loads(l) for l in out.stdout.splitlines() if l.startswith("{")]


def main():
    if sys.argv[1:2] == ["--one-trellis"]:
        return run_trellis(sys.argv[2:])
    if sys.argv[1:2] == ["--one-gcp"]:
        return run_gcp(sys.argv[2:])
    ap = argparse.ArgumentParser()
    ap.add_argument("--trellis", required=True)
    ap.add_argument("--clusters", nargs="+", default=["1", "100", "1000"])
    ap.add_argument("--updates", default="20")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--route-only", action="store_true",
                    help="Trellis only: every update changes the route, never the endpoints")
    ap.add_argument("--endpoints-only", action="store_true",
                    help="Trellis's updates change every endpoint, never the route (go-control-plane's both)")
    ap.add_argument("--profile", action="store_true",
                    help="also CPU per update of Envoy's main thread and the control plane, and Trellis's rebuild")
    a = ap.parse_args()
    envoy = os.environ.get("ENVOY_BIN") or subprocess.run(
        ["sh", "-c", "command -v envoy"], capture_output=True, text=True).stdout.strip()
    rows = []
    for _ in range(a.runs):
        gcp = [sys.executable, "ads_run.py", "--peer", "gcp", "--runs", "1", "--clusters", *a.clusters,
               "--updates", a.updates]
        if a.profile:
            gcp[1:2] = [os.path.abspath(__file__), "--one-gcp"]
        for d in ([] if a.route_only else lines(gcp, SHARED)):
            rows.append(("go-control-plane", "sotw", d["clusters"], d["snapshot_to_all_acked"]["median_ms"],
                         None, d.get("server_rss_mib_sampled_externally"), d.get("envoy_rss_mib_with_config"),
                         profile(d)))
        for mode in ("delta", "sotw"):
            cmd = [sys.executable, os.path.abspath(__file__), "--one-trellis", "--trellis", a.trellis,
                   "--envoy", envoy, "--mode", mode, "--clusters", *a.clusters, "--updates", a.updates]
            cmd += ["--route-only"] if a.route_only else []
            cmd += ["--endpoints-only"] if a.endpoints_only else []
            cmd += ["--profile"] if a.profile else []
            for d in lines(cmd, SHARED):
                rows.append(("trellis", mode, d["clusters"], d["server_ms_p50"], d["e2e_ms_p50"],
                             d["trellis_rss_mib"], d["envoy_rss_mib"], profile(d)))
    extra = (f" {'envoy main CPU ms':>17} {'cp CPU ms':>9} {'rebuild ms':>10} {'cp faults':>9}"
             if a.profile else "")
    print(f"{'peer':17} {'mode':5} {'N':>5} {'push->ACK ms':>12} {'file->applied ms':>16} "
          f"{'cp RSS MiB':>10} {'envoy RSS MiB':>13}{extra}")
    for p, m, n, s, e, rss, ers, prof in sorted(rows, key=lambda x: (x[2], x[0], x[1])):
        f = lambda v: "-" if v is None else f"{v:.1f}"
        cols = "".join(f" {f(v):>{w}}" for v, w in zip(prof, (17, 9, 10, 9))) if a.profile else ""
        print(f"{p:17} {m:5} {n:>5} {f(s):>12} {f(e):>16} {f(rss):>10} {f(ers):>13}{cols}")


def profile(d):
    """The `--profile` figures of one result (per update), None where absent."""
    return [d.get(k) for k in ("envoy_main_cpu_ms", "cp_cpu_ms", "rebuild_ms_p50", "cp_minor_faults")]


if __name__ == "__main__":
    main()
