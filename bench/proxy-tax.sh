#!/usr/bin/env bash
# The Envoy memory one outbound cluster costs, for `trellis lint`'s proxy-tax
# estimate. For each mesh size N it writes N services (one HTTP port, E static
# endpoints each, no subsets: one outbound cluster per service), runs
# `trellis serve` on it and one real Envoy sidecar (bootstrap from `trellis
# bootstrap`, --concurrency 1) that reaches every service, waits until no
# cluster warms and the active count holds still for 2 s, then prints Envoy's
# own heap gauge `server.memory_allocated` and `VmRSS`.
#
# Usage: bench/proxy-tax.sh [TRELLIS_BIN] [N...]   (default N: 0 250 500 1000)
# Env: ENDPOINTS (default 1). Every child is killed on exit.
set -euo pipefail

BIN=${1:-target/debug/trellis}
shift || true
SIZES=${*:-0 250 500 1000}
ENDPOINTS=${ENDPOINTS:-1}
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

write_mesh() { # DIR N
  mkdir -p "$1"
  for ((i = 0; i < $2; i++)); do
    {
      printf 'apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: svc-%d\nspec:\n' "$i"
      printf '  hosts: [svc-%d]\n  ports:\n  - {number: 80, name: http, protocol: HTTP}\n' "$i"
      printf '  resolution: STATIC\n  endpoints:\n'
      for ((e = 1; e <= ENDPOINTS; e++)); do
        printf '  - address: 10.%d.%d.%d\n' $(((i >> 8) & 255)) $((i & 255)) "$e"
      done
    } >"$1/svc-$i.yaml"
  done
}

stat() { # ADMIN_PORT NAME
  curl -s "http://127.0.0.1:$1/stats?filter=^$2\$" | awk -F': ' '{print $2}'
}

measure() { # N
  local n=$1 dir="$WORK/mesh-$1" xds admin_cp admin
  write_mesh "$dir" "$n"
  xds=$(free_port) admin_cp=$(free_port) admin=$(free_port)
  "$BIN" serve --config "$dir" --state-dir "$WORK/state-$n" --insecure-xds \
    --xds-addr "127.0.0.1:$xds" --admin-addr "127.0.0.1:$admin_cp" 2>"$WORK/serve-$n.log" &
  PIDS+=($!)
  "$BIN" bootstrap --service client --node-id "client-$n" --app-port "$(free_port)" \
    --inbound-port "$(free_port)" --outbound-port "$(free_port)" --admin-port "$admin" \
    --stats-port 0 --xds-addr "127.0.0.1:$xds" -o "$WORK/boot-$n.yaml"
  envoy -c "$WORK/boot-$n.yaml" --disable-hot-restart --drain-strategy immediate \
    --concurrency 1 --log-level warn 2>"$WORK/envoy-$n.log" &
  local envoy_pid=$!
  PIDS+=("$envoy_pid")
  local last="" stable=0
  for ((t = 0; t < 600; t++)); do
    sleep 0.2
    local active warming
    active=$(stat "$admin" cluster_manager.active_clusters 2>/dev/null || true)
    warming=$(stat "$admin" cluster_manager.warming_clusters 2>/dev/null || true)
    if [[ -n "$active" && "$warming" == 0 && "$active" == "$last" ]]; then
      stable=$((stable + 1))
      ((stable >= 10)) && break
    else
      stable=0
    fi
    last=$active
  done
  local heap rss
  heap=$(stat "$admin" server.memory_allocated)
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$envoy_pid/status")
  echo "{\"services\": $n, \"endpoints\": $ENDPOINTS, \"clusters\": $last, \"heap_allocated_bytes\": $heap, \"rss_kb\": $rss}"
  kill "$envoy_pid" "${PIDS[-2]}"
  wait "$envoy_pid" "${PIDS[-2]}" 2>/dev/null || true
}

for n in $SIZES; do measure "$n"; done
