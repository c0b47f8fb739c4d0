//! Private keys from PEM. ring (rcgen's backend) reads PKCS#8 only, while
//! operators' CA keys are often PKCS#1 (`RSA PRIVATE KEY`) or SEC1
//! (`EC PRIVATE KEY`), as openssl writes them: those are wrapped into PKCS#8
//! (RFC 5208 §5) here. Error messages never contain key bytes.

use rcgen::KeyPair;

/// AlgorithmIdentifier rsaEncryption (RFC 8017 A.1) with NULL parameters.
const ALG_RSA: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];
/// AlgorithmIdentifier id-ecPublicKey with namedCurve prime256v1 (RFC 5480 §2.1.1).
const ALG_EC_P256: &[u8] = &[
    0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
    0xce, 0x3d, 0x03, 0x01, 0x07,
];
/// AlgorithmIdentifier id-ecPublicKey with namedCurve secp384r1.
const ALG_EC_P384: &[u8] = &[
    0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b, 0x81, 0x04,
    0x00, 0x22,
];

const UNSUPPORTED: &str = "holds an unsupported or corrupt private key \
    (supported: unencrypted ECDSA P-256/P-384 or RSA of 2048 bits or more, PKCS#8, PKCS#1 or SEC1 PEM)";

/// Parses the first private key block of a PEM file; the error is a problem
/// description for "FILE: problem".
pub(crate) fn parse_private_key(pem: &[u8]) -> Result<KeyPair, String> {
    for block in x509_parser::pem::Pem::iter_from_buffer(pem) {
        let block = block.map_err(|_| "is not valid PEM".to_string())?;
        let candidates: Vec<Vec<u8>> = match block.label.as_str() {
            "PRIVATE KEY" => vec![block.contents.clone()],
            "RSA PRIVATE KEY" => vec![pkcs8(ALG_RSA, &block.contents)],
            "EC PRIVATE KEY" => vec![
                pkcs8(ALG_EC_P256, &block.contents),
                pkcs8(ALG_EC_P384, &block.contents),
            ],
            "ENCRYPTED PRIVATE KEY" => {
                return Err("holds an encrypted private key; give an unencrypted one".into())
            }
            _ => continue,
        };
        return candidates
            .into_iter()
            .find_map(|der| KeyPair::try_from(der).ok())
            .ok_or_else(|| UNSUPPORTED.to_string());
    }
    Err("contains no PRIVATE KEY block".into())
}

/// PrivateKeyInfo ::= SEQUENCE { version 0, algorithm, privateKey OCTET STRING }.
fn pkcs8(algorithm: &[u8], private_key: &[u8]) -> Vec<u8> {
    let mut body = vec![0x02, 0x01, 0x00];
    body.extend_from_slice(algorithm);
    body.extend(tlv(0x04, private_key));
    tlv(0x30, &body)
}

/// DER tag-length-value with a definite length (X.690 §8.1.3).
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let len = content.len();
    let mut out = vec![tag];
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lengths_use_the_long_form() {
        assert_eq!(tlv(0x04, &[1; 3])[..2], [0x04, 3]);
        assert_eq!(tlv(0x04, &[1; 200])[..3], [0x04, 0x81, 200]);
        assert_eq!(tlv(0x04, &[1; 300])[..4], [0x04, 0x82, 0x01, 0x2c]);
    }

    #[test]
    fn non_key_pem_is_refused_without_echoing_it() {
        let err =
            parse_private_key(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
                .unwrap_err();
        assert_eq!(err, "contains no PRIVATE KEY block");
        let err = parse_private_key(
            b"-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n",
        )
        .unwrap_err();
        assert!(err.starts_with("holds an unsupported"), "{err}");
        assert!(!err.contains("c2VjcmV0"));
    }
}
