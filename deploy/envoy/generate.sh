#!/usr/bin/env bash
# Writes the compose sidecars' Envoy bootstraps into DIR (default: this
# script's directory) with `trellis bootstrap`. The committed files are its
# output; integration-tests/tests/compose.rs checks they are current.
#   TRELLIS=target/debug/trellis deploy/envoy/generate.sh [DIR]
# Each app shares its network namespace with its sidecar, so ports repeat
# across services; --inbound-address is the app container's fixed IP in
# docker-compose.yml (EDS endpoints must be IPs, not names).
set -euo pipefail
trellis=${TRELLIS:-trellis}
out=${1:-$(dirname "$0")}
gen() { # NAME SERVICE VERSION IP
    "$trellis" bootstrap --service "$2" --label "app=$2" --label "version=$3" \
        --app-port 8080 --inbound-address "$4" --xds-addr trellis:15010 \
        --node-id "$1" --stats-port 15090 >"$out/$1.yaml"
}
gen frontend frontend v1 172.30.89.10
gen payment-v1 payment-service v1 172.30.89.11
gen payment-v2 payment-service v2 172.30.89.12
gen ledger ledger v1 172.30.89.13
# The ingress gateway: no app; Gateway servers 443 and 80 on 8443 and 8080.
"$trellis" bootstrap --gateway --service ingress-gateway --label istio=ingressgateway \
    --listen-address 0.0.0.0 --port-map 443=8443,80=8080 --xds-addr trellis:15010 \
    --node-id ingress-gateway --stats-port 0 >"$out/ingress-gateway.yaml"
