//! The demo's ingress gateway: a stock Envoy from a `trellis bootstrap
//! --gateway` bootstrap (label `istio=ingressgateway`, ports 443 and 80
//! mapped to free unprivileged ones), serving `deploy/mesh/ingress.yaml`
//! with a certificate generated for this run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use trellis::bootstrap::{render, GatewaySpec, SidecarSpec, Token};

use super::cert::{IngressCert, Written};
use super::procs::Ports;

/// The Gateway and VirtualService, as docker-compose.yml runs them.
pub const INGRESS: &str = include_str!("../../deploy/mesh/ingress.yaml");

/// File name of [`INGRESS`] inside the demo's config dir.
pub const INGRESS_FILE: &str = "ingress.yaml";

/// The host the Gateway serves and its certificate names. A name with a
/// dot or two: a VirtualService host `a` or `a.b` means a service (`a.b`:
/// of namespace b), as in Istio. `.localhost` names are loopback (RFC
/// 6761); the demo's client and its curl commands still pin 127.0.0.1.
pub const HOST: &str = "frontend.demo.localhost";

/// The Gateway's `credentialName` (in namespace `default`).
const CREDENTIAL: &str = "ingress-cert";

/// The gateway's identity (service and service account).
pub const SERVICE: &str = "ingress-gateway";

/// Lifetime of the generated certificate: longer than any demo run.
const CERT_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// The gateway proxy: its bootstrap spec and the listener ports.
#[derive(Debug, Clone)]
pub struct Gateway {
    /// Identity, labels, admin port and the port map.
    pub spec: SidecarSpec,
    /// Where the HTTPS server (443) listens.
    pub https_port: u16,
    /// Where the HTTP server (80, redirecting) listens.
    pub http_port: u16,
}

impl Gateway {
    /// Picks its ports; it reaches the control plane at `xds_addr`.
    pub fn new(ports: &mut Ports, xds_addr: &str) -> anyhow::Result<Self> {
        let (https_port, http_port) = (ports.pick()?, ports.pick()?);
        let mut spec = SidecarSpec::new(SERVICE, 0);
        spec.labels.insert("istio".into(), "ingressgateway".into());
        spec.admin_port = ports.pick()?;
        spec.xds_addr = xds_addr.to_string();
        spec.gateway = Some(GatewaySpec {
            listen_address: "127.0.0.1".into(),
            port_map: BTreeMap::from([(443, https_port), (80, http_port)]),
            ..GatewaySpec::default()
        });
        Ok(Gateway {
            spec,
            https_port,
            http_port,
        })
    }

    /// `https://HOST:PORT/`, the demo's entry.
    pub fn https_url(&self) -> String {
        format!("https://{HOST}:{}/", self.https_port)
    }

    /// `http://HOST:PORT/`, answered with a redirect.
    pub fn http_url(&self) -> String {
        format!("http://{HOST}:{}/", self.http_port)
    }

    /// Writes the bootstrap (with its token, so mode 0600) into `dir`.
    pub fn write_bootstrap(&self, dir: &Path, token: Token) -> anyhow::Result<PathBuf> {
        let path = dir.join(format!("{SERVICE}.envoy.yaml"));
        let mut spec = self.spec.clone();
        spec.token = Some(token);
        super::mesh::write_private(&path, &render(&spec)?)
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }
}

/// Generates the gateway's certificate into `credentials_dir` (the
/// `serve --credentials-dir` layout); returns the certificate (to trust
/// its CA) and where the files are.
pub fn write_credential(credentials_dir: &Path) -> anyhow::Result<(IngressCert, Written)> {
    let cert = IngressCert::generate(&[HOST.to_string()], CERT_TTL)?;
    let written = cert.write(credentials_dir, "default", CREDENTIAL)?;
    Ok((cert, written))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_names_the_generated_credential_and_host() {
        assert!(INGRESS.contains(&format!("credentialName: {CREDENTIAL}")));
        assert!(INGRESS.contains(&format!("hosts: [{HOST}]")));
        assert!(INGRESS.contains("httpsRedirect: true"));
        assert!(INGRESS.contains("istio: ingressgateway"));
    }

    #[test]
    fn the_gateway_maps_443_and_80_to_free_ports() {
        let mut ports = Ports::default();
        let gw = Gateway::new(&mut ports, "127.0.0.1:1").unwrap();
        let map = &gw.spec.gateway.as_ref().unwrap().port_map;
        assert_eq!(map[&443], gw.https_port);
        assert_eq!(map[&80], gw.http_port);
        assert_ne!(gw.https_port, gw.http_port);
        let yaml = render(&gw.spec).unwrap();
        assert!(yaml.contains("ingressgateway"), "{yaml}");
    }
}
