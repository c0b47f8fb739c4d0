#!/usr/bin/env python3
"""Where `trellis serve`'s RSS goes over a run: the mesh and the one Envoy of
../shared/bench/trellis_push.py (N services, U updates, each rewriting the whole file), printing
VmRSS (RssAnon, RssFile and, as `binary`, the binary's own resident pages), VmHWM and threads of
serve when ready, when Envoy synced, and after each update.
Usage: python3 bench/rss_updates.py BIN N U [WRAPPER...]   (MODE=sotw for state of the world;
IDLE=S waits S seconds before the last line; a WRAPPER such as heaptrack runs serve under it)."""
import os, signal, subprocess, sys, tempfile, time, json
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "bench"))
import trellis_push as tp

binp, n, u = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
wrap = sys.argv[4:]
d = tempfile.mkdtemp(prefix="cpmem-")
cfgdir = os.path.join(d, "config"); os.makedirs(cfgdir)
cfg = os.path.join(cfgdir, "mesh.yaml")
tp.write(cfg, tp.config(n, 0))
xds, adm, eadm, out = 18300, 18301, 18302, 18303
srv = subprocess.Popen(wrap + [binp, "serve", "--config", cfgdir, "--xds-addr", f"127.0.0.1:{xds}",
      "--admin-addr", f"127.0.0.1:{adm}", "--state-dir", os.path.join(d, "state"), "--insecure-xds"],
      stdout=open(os.path.join(d, "trellis.log"), "w"), stderr=subprocess.STDOUT, start_new_session=True)
def pid_of_serve():
    if not wrap: return srv.pid
    for _ in range(100):
        out = subprocess.run(["pgrep", "-P", str(srv.pid), "-f", "serve"], capture_output=True, text=True).stdout.split()
        for p in out:
            return int(p)
        # heaptrack runs the program as a grandchild via a shell sometimes
        out = subprocess.run(["pgrep", "-f", f"{binp} serve --config {cfgdir}"], capture_output=True, text=True).stdout.split()
        cands = [int(p) for p in out if int(p) != srv.pid]
        if cands: return cands[-1]
        time.sleep(0.1)
def st(pid):
    r = {}
    for l in open(f"/proc/{pid}/status"):
        if l.startswith(("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads")): k, v = l.split(":"); r[k] = v.strip()
    # The binary's own pages (its text and read-only data, file-backed) apart
    # from the rest: the part of RSS no heap change moves.
    own = os.path.realpath(binp)
    try:
        kb, mine = 0, False
        for l in open(f"/proc/{pid}/smaps"):
            f = l.split()
            if f and "-" in f[0] and len(f) >= 5:
                mine = len(f) >= 6 and f[5] == own
            elif mine and f[0] == "Rss:":
                kb += int(f[1])
        r["binary"] = f"{kb} kB"
    except OSError:
        pass
    return r
ep = None
try:
    for _ in range(600):
        if tp.get(adm, "/readyz")[0] == 200: break
        time.sleep(0.05)
    spid = pid_of_serve()
    print("ready", st(spid), flush=True)
    boot = os.path.join(d, "boot.yaml")
    subprocess.run([binp, "bootstrap", "--service", "client", "--app-port", "18304", "--inbound-port", "18305",
                    "--outbound-port", str(out), "--admin-port", str(eadm), "--stats-port", "0",
                    "--xds-addr", f"127.0.0.1:{xds}", "--ads-mode", os.environ.get("MODE", "delta"), "-o", boot], check=True)
    ep = subprocess.Popen(["envoy", "-c", boot, "--disable-hot-restart", "--concurrency", "2", "-l", "warning",
                           "--drain-strategy", "immediate"], stdout=open(os.path.join(d, "envoy.log"), "w"),
                          stderr=subprocess.STDOUT, start_new_session=True)
    t0 = time.time()
    while tp.route_state(eadm)[0] != 0:
        if time.time() - t0 > 180: raise SystemExit("no version 0")
        time.sleep(0.05)
    time.sleep(1)
    print("synced", st(spid), flush=True)
    for v in range(1, u + 1):
        t = tp.write(cfg, tp.config(n, v))
        while tp.route_state(eadm)[0] != v:
            if time.time() - t > 60: raise SystemExit(f"update {v} not applied")
            time.sleep(0.01)
        time.sleep(0.3)
        tp.conv(adm)
        print("update", v, st(spid), flush=True)
    time.sleep(float(os.environ.get("IDLE", "0")))
    print("end", st(spid), flush=True)
finally:
    if ep:
        os.killpg(ep.pid, signal.SIGKILL); ep.wait()
    os.kill(spid if 'spid' in dir() and spid else srv.pid, signal.SIGINT)
    try: srv.wait(timeout=60)
    except Exception:
        os.killpg(srv.pid, signal.SIGKILL); srv.wait()
    print("dir", d)
