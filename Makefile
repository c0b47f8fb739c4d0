# The commands a developer runs, and the same ones CI (.ci/run) runs.
.PHONY: all fmt lint test test-system test-stress test-istio-samples demo bench

all: lint test

# Format every crate in the workspace.
fmt:
	cargo fmt --all

# Formatting check and clippy with warnings as errors.
lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

# The README's test command: needs only Rust and Envoy 1.40 on PATH, and
# passes in a fresh clone with nothing beside it.
# Build first: the integration tests run the trellis binary from target/.
# The workspace tests run every sidecar on delta ADS (the bootstrap default);
# then the protocol-sensitive real-Envoy tests run again with
# state-of-the-world sidecars, so both modes stay tested end to end.
SOTW_TESTS := ads_mode auto_registration delta hot_reload nack rotation sidecar_scope split xds_auth xds_tls
test:
	cargo build --workspace && cargo test --workspace
	TRELLIS_TEST_ADS_MODE=sotw cargo test -p trellis-integration-tests $(foreach t,$(SOTW_TESTS),--test $(t))

# Tests that need more than Rust and Envoy, or long faults: every test
# marked `#[ignore = "system test ..."]`. Each one fails, never skips, when
# a prerequisite is missing; .ci/run installs them.
test-system:
	cargo test -p trellis-integration-tests --test system -- --ignored --test-threads 1
	cargo test -p trellis-integration-tests --test replicas -- --ignored --test-threads 1
	cargo test -p trellis-integration-tests --test rollout_replicas -- --ignored --test-threads 1
	cargo test -p trellis-integration-tests --test multicluster -- --ignored --test-threads 1
	cargo test -p trellis-integration-tests --test alert_rules -- --ignored
	cargo test -p trellis-integration-tests --test ratelimit_global -- --ignored --test-threads 1
	cargo test -p trellis-integration-tests --test ui -- --ignored --test-threads 1
	cargo test -p trellis-integration-tests --test service_entry_dynamic -- --ignored

# The unit and protocol tests again while `stress` keeps both cores busy, so
# that a race shows here before it lands. Needs Debian's `stress`; its
# workers are a process group of their own, killed as a group at the end.
STRESS_SECONDS := 900
test-stress:
	@command -v stress >/dev/null || { echo "test-stress needs stress (apt-get install stress)" >&2; exit 1; }
	cargo test --workspace --no-run
	setsid stress --cpu 2 --timeout $(STRESS_SECONDS) >/dev/null 2>&1 & pid=$$!; \
	cargo test -p trellis --lib --test xds_protocol --test xds_delta; rc=$$?; \
	kill -- -$$pid 2>/dev/null; wait $$pid 2>/dev/null; exit $$rc

# Istio's own Bookinfo samples, which the repository does not hold: opt-in,
# `make test-istio-samples ISTIO_SAMPLES=DIR` with DIR holding `bookinfo/`.
# Fails, naming what is missing, when ISTIO_SAMPLES is unset or wrong.
test-istio-samples:
	@test -n "$(ISTIO_SAMPLES)" || { echo "test-istio-samples: set ISTIO_SAMPLES=DIR (the directory holding Istio's bookinfo/ samples)" >&2; exit 1; }
	@test -d "$(ISTIO_SAMPLES)/bookinfo" || { echo "test-istio-samples: $(ISTIO_SAMPLES)/bookinfo not found (set ISTIO_SAMPLES=DIR)" >&2; exit 1; }
	TRELLIS_ISTIO_SAMPLES="$$(cd "$(ISTIO_SAMPLES)" && pwd)" cargo test -p trellis --lib bookinfo -- --ignored
	TRELLIS_ISTIO_SAMPLES="$$(cd "$(ISTIO_SAMPLES)" && pwd)" cargo test -p trellis-integration-tests --test bookinfo -- --ignored

# The local demo: control plane, three services, Envoy sidecars.
demo:
	cargo run --release -- demo

# Benchmarks are programs that print figures, not timed tests: every
# examples/*bench*.rs, in release.
bench:
	@for f in examples/*bench*.rs; do \
		[ -e "$$f" ] || continue; \
		echo "== $$f"; cargo run --release --example "$$(basename "$$f" .rs)" || exit 1; \
	done
