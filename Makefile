# The commands a developer runs, and the same ones CI (.ci/run) runs.
.PHONY: all fmt lint test demo bench readme

all: lint test

# Format every crate in the workspace.
fmt:
	cargo fmt --all

# Formatting check and clippy with warnings as errors.
lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

# Build first: the integration tests run the trellis binary from target/.
# The workspace tests run every sidecar on delta ADS (the bootstrap default);
# then the integration suite runs again with state-of-the-world sidecars, so
# both modes stay tested end to end.
test:
	cargo build --workspace && cargo test --workspace
	TRELLIS_TEST_ADS_MODE=sotw cargo test -p trellis-integration-tests

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

# Copies docs/config-reference.md into the README's "Config reference"
# section (between the markers), one heading level down.
readme:
	awk -f .ci/inline-reference.awk README.md > README.md.tmp && mv README.md.tmp README.md
