//! Finds the protobuf descriptor set that the `envoy-types` crate ships
//! (`src/generated/types.bin`) and copies it into `OUT_DIR`, so that
//! `envoy_json` can `include_bytes!` it wherever cargo unpacked the crate.
//!
//! Search order: `$ENVOY_TYPES_DESCRIPTOR` (a file), then every
//! `registry/src/*/envoy-types-VERSION/` under `$CARGO_HOME` (default
//! `~/.cargo`), then `vendor/envoy-types/` next to this file.

use std::path::{Path, PathBuf};

/// Must match the exact pin of `envoy-types` in Cargo.toml.
const ENVOY_TYPES_VERSION: &str = "0.7.7";
const DESCRIPTOR: &str = "src/generated/types.bin";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=ENVOY_TYPES_DESCRIPTOR");
    let Some(found) = find_descriptor() else {
        panic!(
            "envoy-types {ENVOY_TYPES_VERSION} descriptor set ({DESCRIPTOR}) not found; \
             set ENVOY_TYPES_DESCRIPTOR to its path"
        );
    };
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::copy(&found, out.join("envoy_types.bin")).expect("copy descriptor set");
    println!("cargo:rerun-if-changed={}", found.display());
}

fn find_descriptor() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("ENVOY_TYPES_DESCRIPTOR") {
        return Some(PathBuf::from(path)).filter(|p| p.is_file());
    }
    let crate_dir = format!("envoy-types-{ENVOY_TYPES_VERSION}");
    for home in cargo_homes() {
        let Ok(indexes) = std::fs::read_dir(home.join("registry").join("src")) else {
            continue;
        };
        for index in indexes.flatten() {
            let candidate = index.path().join(&crate_dir).join(DESCRIPTOR);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    let vendored = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("vendor")
        .join("envoy-types")
        .join(DESCRIPTOR);
    Some(vendored).filter(|p| p.is_file())
}

fn cargo_homes() -> Vec<PathBuf> {
    let mut homes = Vec::new();
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        homes.push(PathBuf::from(home));
    }
    if let Some(home) = std::env::var_os("HOME") {
        homes.push(PathBuf::from(home).join(".cargo"));
    }
    homes
}
