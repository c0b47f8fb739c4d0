// rds-replay: an ADS (SotW gRPC) server that serves one Envoy node a single
// RouteConfiguration read from a proto3 JSON file, replaced on command, so
// that Envoy's own apply time of route configurations of different shapes can
// be measured on real RDS updates (bench/route-shape.py drives it).
//
// Commands on stdin, one per line: "VERSION PATH". Each sets a snapshot whose
// only resource is the route configuration in PATH, at VERSION. On stdout, one
// line per command: "ack VERSION MICROS" (snapshot set -> Envoy's ACK of that
// version) or "nack VERSION MESSAGE". Loopback only; the process ends when
// stdin closes.
//
// Built with go-control-plane from Debian packages, as ../shared/bench's
// build_go_control_plane.sh builds gcp_bench (see bench/route-shape.py).
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/log"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
)

var (
	addr   = flag.String("addr", "127.0.0.1:18000", "xDS listen address (loopback only)")
	nodeID = flag.String("node", "bench", "Envoy node id")
	wait   = flag.Duration("timeout", 60*time.Second, "max wait for the ACK of one version")
)

// waiter hands the ACK (or NACK) of the version being waited for to main.
type waiter struct {
	mu   sync.Mutex
	want string
	ch   chan string
}

func (w *waiter) arm(version string) chan string {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.want, w.ch = version, make(chan string, 1)
	return w.ch
}

func (w *waiter) onRequest(_ int64, req *discovery.DiscoveryRequest) error {
	if req.TypeUrl != resource.RouteType || req.ResponseNonce == "" {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch == nil {
		return nil
	}
	if req.ErrorDetail != nil {
		w.ch <- "nack " + w.want + " " + strings.ReplaceAll(req.ErrorDetail.Message, "\n", " ")
		w.ch = nil
	} else if req.VersionInfo == w.want {
		w.ch <- "ack"
		w.ch = nil
	}
	return nil
}

func load(path string) (*route.RouteConfiguration, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	rc := &route.RouteConfiguration{}
	return rc, protojson.Unmarshal(b, rc)
}

func serve(ctx context.Context, cache cachev3.SnapshotCache, w *waiter) error {
	host, _, err := net.SplitHostPort(*addr)
	if err != nil || !strings.HasPrefix(host, "127.") {
		return fmt.Errorf("refusing non-loopback -addr %s", *addr)
	}
	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	gs := grpc.NewServer()
	srv := serverv3.NewServer(ctx, cache, serverv3.CallbackFuncs{StreamRequestFunc: w.onRequest})
	discovery.RegisterAggregatedDiscoveryServiceServer(gs, srv)
	go gs.Serve(lis)
	return nil
}

// apply sets one version and waits for Envoy's answer to it.
func apply(ctx context.Context, cache cachev3.SnapshotCache, w *waiter, version, path string) string {
	rc, err := load(path)
	if err != nil {
		return "nack " + version + " load: " + err.Error()
	}
	snap, err := cachev3.NewSnapshot(version, map[resource.Type][]types.Resource{resource.RouteType: {rc}})
	if err != nil {
		return "nack " + version + " snapshot: " + err.Error()
	}
	ch := w.arm(version)
	t0 := time.Now()
	if err := cache.SetSnapshot(ctx, *nodeID, snap); err != nil {
		return "nack " + version + " set: " + err.Error()
	}
	select {
	case got := <-ch:
		if got == "ack" {
			return fmt.Sprintf("ack %s %d", version, time.Since(t0).Microseconds())
		}
		return got
	case <-time.After(*wait):
		return "nack " + version + " timeout"
	}
}

func main() {
	flag.Parse()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cache := cachev3.NewSnapshotCache(false, cachev3.IDHash{}, log.LoggerFuncs{})
	w := &waiter{}
	if err := serve(ctx, cache, w); err != nil {
		fmt.Fprintln(os.Stderr, "rds-replay:", err)
		os.Exit(1)
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) != 2 {
			fmt.Println("nack ? usage: VERSION PATH")
			continue
		}
		fmt.Println(apply(ctx, cache, w, f[0], f[1]))
	}
}
