#!/usr/bin/env bash
# Instructions one config change costs the control plane: callgrind counts
# the instructions of one reload and one rebuild of `examples/rebuild_cost.rs`,
# and of building the new config's NACK provenance (which `serve` does only
# when a proxy first rejects something)
# (a figure that does not move with the machine's load, unlike a timing).
# Prints one JSON line per part: instructions per update, over UPDATES updates
# after two warm-up updates.
#
# Usage: bench/rebuild-instructions.sh [SERVICES] [UPDATES]   (default 1000 3)
# Needs valgrind; builds the example with the release profile.
set -euo pipefail
SERVICES=${1:-1000}
UPDATES=${2:-3}
cargo build --release --example rebuild_cost >&2
BIN=target/release/examples/rebuild_cost
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
for part in load rebuild provenance; do
  valgrind --tool=callgrind --callgrind-out-file="$WORK/$part.out" \
    --toggle-collect="*measured_$part*" "$BIN" "$SERVICES" "$UPDATES" >"$WORK/$part.json" 2>"$WORK/$part.log"
  total=$(awk '/^(summary|totals):/ {print $2; exit}' "$WORK/$part.out")
  echo "{\"part\": \"$part\", \"services\": $SERVICES, \"instructions_per_update\": $((total / UPDATES))}"
done
