//! Resource and type versions: a documented hash of the content.
//!
//! A version is the 128-bit XXH3 hash (`XXH3_128bits`, xxHash 0.8, whose
//! output is frozen by its specification) of the content, as 32 lowercase
//! hex digits, high half first (what `xxhsum -H2` prints). Each hashed
//! field is written as its length (8 bytes, big-endian) and then its bytes,
//! so no two different field lists hash the same input. The algorithm is
//! fixed, unlike `std`'s `DefaultHasher`, whose algorithm may change with
//! any Rust release: the same resources get the same versions in every
//! build and every run of Trellis (and on every replica), so an Envoy that
//! reconnects after a control-plane restart or upgrade, reporting the
//! versions it holds (`initial_resource_versions`, "Incremental xDS"), is
//! sent nothing that did not change. The bytes hashed are the canonical
//! encoding (see `crate::canonical`), so equal content means equal bytes.
//!
//! A version only tells changed content from unchanged content; nothing
//! trusts it as a checksum against tampering. So it need not resist
//! crafted collisions, and a non-cryptographic hash, tens of times faster
//! than SHA-256 without SHA instructions, is enough: two different
//! contents of one resource colliding by chance in 128 bits is not a
//! practical concern.

use std::ops::Deref;

use envoy_types::pb::google::protobuf::Any;
use xxhash_rust::xxh3::Xxh3Default;

/// One encoded resource and its version, hashed once when the resource is
/// made: every set version and every delta stream's diff that carries it
/// reads the version instead of hashing the bytes again.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned {
    any: Any,
    digest: u128,
    /// `digest` in hex: kept inline, not in a `String` of its own.
    hex: [u8; HEX_DIGITS],
}

impl Versioned {
    /// `any` with its version: a hash of its type URL and bytes.
    pub fn new(any: Any) -> Self {
        let digest = resource_digest(&any);
        Versioned {
            any,
            digest,
            hex: hex(digest),
        }
    }

    /// The resource's version: a hash of its type URL and bytes.
    pub fn version(&self) -> &str {
        // Hex digits are ASCII: the conversion cannot fail.
        std::str::from_utf8(&self.hex).unwrap_or_default()
    }

    /// The version's 128 bits: a key for finding equal content (equal
    /// digests, then equal bytes) without hashing the bytes again.
    pub(crate) fn digest(&self) -> u128 {
        self.digest
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
fn resource_digest(any: &Any) -> u128 {
    let mut hasher = VersionHasher::new();
    hasher.field(any.type_url.as_bytes()).field(&any.value);
    hasher.0.digest128()
}

/// Hex digits of a version (its 128 bits).
const HEX_DIGITS: usize = 32;

/// Hashes a list of fields into a version.
pub(crate) struct VersionHasher(Xxh3Default);

impl VersionHasher {
    /// An empty hash.
    pub(crate) fn new() -> Self {
        VersionHasher(Xxh3Default::new())
    }

    /// Adds one field: its length, then its bytes.
    pub(crate) fn field(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.update(&(bytes.len() as u64).to_be_bytes());
        self.0.update(bytes);
        self
    }

    /// The version of the fields added so far.
    pub(crate) fn finish(self) -> String {
        String::from_utf8_lossy(&hex(self.0.digest128())).into_owned()
    }
}

/// `digest` as lowercase hex, most significant digit first.
fn hex(digest: u128) -> [u8; HEX_DIGITS] {
    let mut out = [0; HEX_DIGITS];
    for (i, byte) in digest.to_be_bytes().iter().enumerate() {
        out[2 * i] = HEX[usize::from(byte >> 4)];
        out[2 * i + 1] = HEX[usize::from(byte & 0xf)];
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    /// Pinned values, from the reference implementation (`xxhsum -H2`
    /// over the framed bytes): a change of algorithm or framing fails
    /// here, since it would change every version Envoys hold.
    #[test]
    fn versions_are_pinned() {
        assert_eq!(
            VersionHasher::new().finish(),
            // XXH3-128 of the empty input.
            "99aa06d3014798d86001c324468d497f"
        );
        let mut h = VersionHasher::new();
        h.field(b"a").field(b"bc");
        assert_eq!(h.finish(), "771ca41371fbfe448924b414b36f1c6b");
        // Past XXH3's short-input paths and its 256-byte stream buffer.
        let value: Vec<u8> = (0..5000u32).map(|i| ((i * 7 + 3) % 251) as u8).collect();
        let any = Any {
            type_url: "type.googleapis.com/t".into(),
            value,
        };
        assert_eq!(
            Versioned::new(any).version(),
            "6c9bba11499afc99ea2d0f9f89ca8aeb"
        );
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
