//! `--xds-tls`: ADS over TLS with a server certificate from the mesh CA, so
//! sidecars (`trellis bootstrap --xds-ca-file ROOT.pem`) know they talk to
//! this control plane before they send their token.

use std::net::IpAddr;
use std::time::Duration;

use tonic::transport::{Identity, ServerTlsConfig};

use super::{ServeError, ServeOptions};
use crate::ca::Ca;

/// Lifetime of the xDS server certificate. It is issued at start and not
/// renewed while running (tonic's TLS config is fixed once serving), so it
/// is long; a restart issues a fresh one (e.g. after a root rotation).
const SERVER_CERT_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// The TLS config for the ADS server.
pub(super) fn server_config(ca: &Ca, opts: &ServeOptions) -> Result<ServerTlsConfig, ServeError> {
    let (dns, ips) = names(opts);
    let cert = ca.issue_server(&dns, &ips, SERVER_CERT_TTL)?;
    tracing::info!(
        serial = cert.serial_hex,
        dns = ?dns,
        ips = ?ips,
        "xDS over TLS with a certificate from the mesh CA"
    );
    let identity = Identity::from_pem(&cert.chain_pem, cert.key.expose_secret());
    Ok(ServerTlsConfig::new().identity(identity))
}

/// The certificate's SANs: the listen IP (unless unspecified), loopback,
/// `localhost` and the names given with `--xds-tls-name`.
fn names(opts: &ServeOptions) -> (Vec<String>, Vec<IpAddr>) {
    let mut dns = vec!["localhost".to_string()];
    let mut ips = vec![IpAddr::from([127, 0, 0, 1])];
    let listen = opts.xds_addr.ip();
    if !listen.is_unspecified() && !ips.contains(&listen) {
        ips.push(listen);
    }
    for name in &opts.xds_tls_names {
        match name.parse::<IpAddr>() {
            Ok(ip) if !ips.contains(&ip) => ips.push(ip),
            Ok(_) => {}
            Err(_) if !dns.contains(name) => dns.push(name.clone()),
            Err(_) => {}
        }
    }
    (dns, ips)
}
