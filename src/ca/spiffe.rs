//! SPIFFE identities of workloads (`spiffe://TD/ns/NS/sa/SA`), the form Istio uses.

use std::fmt;
use std::str::FromStr;

/// A workload identity: `spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    /// The trust domain, e.g. `cluster.local`.
    pub trust_domain: String,
    /// The workload's namespace.
    pub namespace: String,
    /// The workload's service account.
    pub service_account: String,
}

/// Why a string is not a SPIFFE ID of the Istio form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpiffeIdError {
    /// The string does not start with `spiffe://`.
    #[error("a SPIFFE ID starts with `spiffe://`")]
    Scheme,
    /// The path is not `/ns/NAMESPACE/sa/SERVICE_ACCOUNT`.
    #[error("a SPIFFE ID has the form spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT")]
    Shape,
    /// A segment is empty or has characters outside SPIFFE's allowed set.
    #[error("`{0}` is not a valid SPIFFE ID segment (letters, digits, `.`, `-`, `_`)")]
    Segment(String),
}

impl SpiffeId {
    /// Builds an ID after checking each segment (SPIFFE ID spec §2: trust domain
    /// and path segments use letters, digits, `.`, `-`, `_`; no empty segments).
    pub fn new(
        trust_domain: &str,
        namespace: &str,
        service_account: &str,
    ) -> Result<Self, SpiffeIdError> {
        for segment in [trust_domain, namespace, service_account] {
            check_segment(segment)?;
        }
        Ok(Self {
            trust_domain: trust_domain.to_ascii_lowercase(),
            namespace: namespace.to_owned(),
            service_account: service_account.to_owned(),
        })
    }

    /// The URI form, as written into certificates' URI SAN.
    pub fn uri(&self) -> String {
        self.to_string()
    }
}

fn check_segment(segment: &str) -> Result<(), SpiffeIdError> {
    let valid = !segment.is_empty()
        && segment
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if valid {
        Ok(())
    } else {
        Err(SpiffeIdError::Segment(segment.to_owned()))
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "spiffe://{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.service_account
        )
    }
}

impl FromStr for SpiffeId {
    type Err = SpiffeIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s.strip_prefix("spiffe://").ok_or(SpiffeIdError::Scheme)?;
        let parts: Vec<&str> = rest.split('/').collect();
        match parts.as_slice() {
            [td, "ns", ns, "sa", sa] => Self::new(td, ns, sa),
            _ => Err(SpiffeIdError::Shape),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_parse_round_trip() {
        let id = SpiffeId::new("cluster.local", "shop", "frontend").unwrap();
        assert_eq!(id.to_string(), "spiffe://cluster.local/ns/shop/sa/frontend");
        assert_eq!(id.uri().parse::<SpiffeId>().unwrap(), id);
    }

    #[test]
    fn rejects_other_shapes() {
        assert_eq!(
            "http://x/ns/a/sa/b".parse::<SpiffeId>(),
            Err(SpiffeIdError::Scheme)
        );
        assert_eq!(
            "spiffe://x/ns/a".parse::<SpiffeId>(),
            Err(SpiffeIdError::Shape)
        );
        assert_eq!(
            "spiffe://x/ns//sa/b".parse::<SpiffeId>(),
            Err(SpiffeIdError::Segment(String::new()))
        );
        assert!(SpiffeId::new("td", "a/b", "c").is_err());
    }
}
