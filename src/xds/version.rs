//! Resource and type versions: a documented hash of the content.
//!
//! A version is the first 128 bits of the SHA-256 (FIPS 180-4) digest of
//! the content, as 32 lowercase hex digits. Each hashed field is written as
//! its length (8 bytes, big-endian) and then its bytes, so no two
//! different field lists hash the same input. SHA-256 is fixed by its
//! standard, unlike `std`'s `DefaultHasher`, whose algorithm may change with
//! any Rust release: the same resources get the same versions in every
//! build and every run of Trellis, so an Envoy that reconnects after a
//! control-plane restart or upgrade, reporting the versions it holds
//! (`initial_resource_versions`, "Incremental xDS"), is sent nothing that
//! did not change. The bytes hashed are the canonical encoding (see
//! `crate::canonical`), so equal content means equal bytes.

use std::ops::Deref;

use envoy_types::pb::google::protobuf::Any;
use ring::digest::{Context, SHA256};

/// One encoded resource and its version, hashed once when the resource is
/// made: every set version and every delta stream's diff that carries it
/// reads the version instead of hashing the bytes again.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned {
    any: Any,
    version: String,
}

impl Versioned {
    /// `any` with its version (see [`resource_version`]).
    pub fn new(any: Any) -> Self {
        let version = resource_version(&any);
        Versioned { any, version }
    }

    /// The resource's version: a hash of its type URL and bytes.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The encoded resource.
    pub fn any(&self) -> &Any {
        &self.any
    }
}

impl Deref for Versioned {
    type Target = Any;

    fn deref(&self) -> &Any {
        &self.any
    }
}

/// The version of one resource: a hash of its type URL and bytes, so the
/// same content always has the same version, also across reconnects to
/// this control plane and its restarts ("Incremental xDS": the server
/// compares it with `initial_resource_versions`).
pub(crate) fn resource_version(any: &Any) -> String {
    let mut hasher = VersionHasher::new();
    hasher.field(any.type_url.as_bytes()).field(&any.value);
    hasher.finish()
}

/// Bytes of the digest kept in a version (128 bits: a collision between
/// two contents is not a practical concern).
const VERSION_BYTES: usize = 16;

/// Hashes a list of fields into a version.
pub(crate) struct VersionHasher(Context);

impl VersionHasher {
    /// An empty hash.
    pub(crate) fn new() -> Self {
        VersionHasher(Context::new(&SHA256))
    }

    /// Adds one field: its length, then its bytes.
    pub(crate) fn field(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.update(&(bytes.len() as u64).to_be_bytes());
        self.0.update(bytes);
        self
    }

    /// The version of the fields added so far.
    pub(crate) fn finish(self) -> String {
        let digest = self.0.finish();
        let mut hex = String::with_capacity(2 * VERSION_BYTES);
        for byte in &digest.as_ref()[..VERSION_BYTES] {
            hex.push(char::from(HEX[usize::from(byte >> 4)]));
            hex.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        hex
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    /// Pinned values: a change of algorithm or framing fails here, since
    /// it would change every version Envoys hold.
    #[test]
    fn versions_are_pinned() {
        assert_eq!(
            VersionHasher::new().finish(),
            // SHA-256 of the empty input.
            "e3b0c44298fc1c149afbf4c8996fb924"
        );
        let mut h = VersionHasher::new();
        h.field(b"a").field(b"bc");
        let mut framed = Vec::new();
        framed.extend_from_slice(&1u64.to_be_bytes());
        framed.extend_from_slice(b"a");
        framed.extend_from_slice(&2u64.to_be_bytes());
        framed.extend_from_slice(b"bc");
        let direct = ring::digest::digest(&SHA256, &framed);
        let hex: String = direct.as_ref()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(h.finish(), hex);
    }

    /// Framing keeps field boundaries: `ab`+`c` differs from `a`+`bc`.
    #[test]
    fn field_boundaries_count() {
        let mut one = VersionHasher::new();
        one.field(b"ab").field(b"c");
        let mut two = VersionHasher::new();
        two.field(b"a").field(b"bc");
        assert_ne!(one.finish(), two.finish());
    }
}
