//! `trellis bootstrap`: flags → [`SidecarSpec`] → YAML on stdout or a file.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use trellis::bootstrap::{render, AdsMode, GatewaySpec, SidecarSpec, Token};
use trellis::config::model::{Locality, Topology};

/// Flags of `trellis bootstrap`; docs/operations.md lists them with their
/// defaults.
#[derive(Debug, Args)]
pub struct BootstrapArgs {
    /// Service name (the Envoy node's cluster).
    #[arg(long)]
    service: String,
    /// Namespace of the service.
    #[arg(long, default_value = "default")]
    namespace: String,
    /// Workload label `KEY=VALUE` (repeatable), e.g. `version=v2`.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    labels: Vec<(String, String)>,
    /// Service account (default: the service name).
    #[arg(long)]
    service_account: Option<String>,
    /// The application's port on 127.0.0.1 (required, except with --gateway).
    #[arg(long, required_unless_present = "gateway")]
    app_port: Option<u16>,
    /// A gateway proxy (ingress or egress): no app, no sidecar listeners;
    /// it gets the servers of the `Gateway`s whose selector its --label
    /// values match; it is a service endpoint only with --endpoint-address.
    #[arg(long)]
    gateway: bool,
    /// With --gateway: the address its server listeners bind.
    #[arg(long, default_value = "0.0.0.0", requires = "gateway")]
    listen_address: String,
    /// With --gateway: `PORT=LISTEN,...` (e.g. `443=8443,80=8080`), so a
    /// Gateway server on PORT listens on LISTEN (no root needed).
    #[arg(long, value_name = "PORT=LISTEN,...", requires = "gateway", value_parser = parse_port_map)]
    port_map: Option<BTreeMap<u16, u16>>,
    /// With --gateway: register the gateway as an endpoint of its service
    /// (SERVICE.NAMESPACE.svc.cluster.local, or the ServiceEntries whose
    /// workloadSelector its labels match) at ADDR, so sidecars route to it
    /// (egress gateway). ADDR must be where its listeners are reached.
    #[arg(long, value_name = "ADDR", requires = "gateway")]
    endpoint_address: Option<std::net::IpAddr>,
    /// With --gateway: the source address of every connection it opens to
    /// upstreams (Envoy's `upstream_bind_config`), e.g. the address an
    /// egress gateway's traffic must come from.
    #[arg(long, value_name = "ADDR", requires = "gateway")]
    upstream_bind_address: Option<std::net::IpAddr>,
    /// Where the proxy runs, `REGION[/ZONE[/SUBZONE]]`: Envoy's node
    /// locality, read back at registration for locality load balancing
    /// (default: the topology labels, else none).
    #[arg(long, value_name = "REGION[/ZONE[/SUBZONE]]", value_parser = Locality::parse)]
    locality: Option<Locality>,
    /// The proxy's network (node metadata `network`; default: the
    /// `topology.istio.io/network` label, else the local network).
    #[arg(long, value_name = "NAME")]
    network: Option<String>,
    /// The mesh cluster the proxy belongs to (node metadata
    /// `cluster_name`; default: the `topology.istio.io/cluster` label,
    /// else the local cluster).
    #[arg(long, value_name = "NAME")]
    cluster_name: Option<String>,
    /// Port of the sidecar's inbound listener.
    #[arg(long, default_value_t = 15006)]
    inbound_port: u16,
    /// Address other sidecars reach this sidecar on.
    #[arg(long, default_value = "127.0.0.1")]
    inbound_address: String,
    /// Port of the sidecar's outbound listener.
    #[arg(long, default_value_t = 15001)]
    outbound_port: u16,
    /// Port of Envoy's admin interface (on 127.0.0.1).
    #[arg(long, default_value_t = 15000)]
    admin_port: u16,
    /// The control plane's ADS address; repeat it for every replica of a
    /// replicated control plane (`serve --store etcd://...`).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:15010")]
    xds_addr: Vec<String>,
    /// Node id (default: SERVICE-INBOUNDPORT).
    #[arg(long)]
    node_id: Option<String>,
    /// File holding a workload token (`trellis token`); it is sent as
    /// `authorization: Bearer TOKEN` on the ADS stream, and the bootstrap
    /// (which then holds the token) is written with mode 0600.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// The mesh root certificate (PEM) of a control plane started with
    /// `--xds-tls`, or a bundle of several (`trellis ca root` during a root
    /// rotation prints both roots): ADS then uses TLS, trusting only these.
    #[arg(long, value_name = "FILE")]
    xds_ca_file: Option<PathBuf>,
    /// ADS protocol: `delta` (incremental xDS, api_type DELTA_GRPC; the
    /// default) or `sotw` for state of the world (api_type GRPC).
    #[arg(long, value_name = "delta|sotw", default_value = "delta")]
    ads_mode: AdsMode,
    /// Port of the Prometheus stats listener (on --inbound-address): only
    /// `/stats/prometheus` and `/metrics`, never the admin API; 0 disables it.
    #[arg(long, default_value_t = 15090)]
    stats_port: u16,
    /// Keep every per-cluster stat Envoy makes. By default the stats of the
    /// mesh's clusters that Trellis's metrics, dashboards and alerts do not
    /// read (load-balancer internals, connection pool details, update
    /// counters, ...) are not created: they cost about 21 KB per service.
    #[arg(long)]
    all_cluster_stats: bool,
    /// Write to FILE instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
}

impl BootstrapArgs {
    fn spec(&self) -> anyhow::Result<SidecarSpec> {
        let token = match &self.token_file {
            Some(path) => Some(read_token(path)?),
            None => None,
        };
        let xds_ca_file = match &self.xds_ca_file {
            // Envoy resolves a relative path against its own working
            // directory, which need not be ours.
            Some(path) => {
                check_ca_file(path)?;
                Some(
                    std::path::absolute(path)
                        .with_context(|| format!("resolving {}", path.display()))?
                        .display()
                        .to_string(),
                )
            }
            None => None,
        };
        Ok(SidecarSpec {
            service: self.service.clone(),
            namespace: self.namespace.clone(),
            labels: self.labels.iter().cloned().collect::<BTreeMap<_, _>>(),
            service_account: self.service_account.clone(),
            app_port: self.app_port.unwrap_or(0),
            inbound_port: self.inbound_port,
            inbound_address: self.inbound_address.clone(),
            outbound_port: self.outbound_port,
            admin_port: self.admin_port,
            xds_addr: self.xds_addr.first().cloned().unwrap_or_default(),
            more_xds_addrs: self.xds_addr.iter().skip(1).cloned().collect(),
            node_id: self.node_id.clone(),
            token,
            xds_ca_file,
            ads_mode: self.ads_mode,
            stats_port: (self.stats_port != 0).then_some(self.stats_port),
            all_cluster_stats: self.all_cluster_stats,
            gateway: self.gateway.then(|| GatewaySpec {
                listen_address: self.listen_address.clone(),
                port_map: self.port_map.clone().unwrap_or_default(),
                endpoint_address: self.endpoint_address.map(|a| a.to_string()),
                upstream_bind_address: self.upstream_bind_address.map(|a| a.to_string()),
            }),
            topology: Topology {
                locality: self.locality.clone().unwrap_or_default(),
                network: self.network.clone().unwrap_or_default(),
                cluster: self.cluster_name.clone().unwrap_or_default(),
            },
        })
    }
}

/// The pinned roots must be there and be certificates: Envoy would
/// otherwise fail only when it starts, with a less clear message.
fn check_ca_file(path: &std::path::Path) -> anyhow::Result<()> {
    let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut roots = 0;
    for block in x509_parser::pem::Pem::iter_from_buffer(&pem) {
        let block = block.with_context(|| format!("{}: is not valid PEM", path.display()))?;
        if block.label != "CERTIFICATE" {
            continue;
        }
        block.parse_x509().with_context(|| {
            format!(
                "{}: holds a certificate that does not parse",
                path.display()
            )
        })?;
        roots += 1;
    }
    if roots == 0 {
        anyhow::bail!(
            "{}: holds no PEM certificate (expected the mesh root or bundle from `trellis ca root`)",
            path.display()
        );
    }
    Ok(())
}

/// Reads a token file: one line, surrounding whitespace ignored. Errors
/// name the file, never its content.
fn read_token(path: &std::path::Path) -> anyhow::Result<Token> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the token file {}", path.display()))?;
    let token = text.trim();
    if token.is_empty() || token.contains(char::is_whitespace) {
        anyhow::bail!(
            "the token file {} must hold one token (as printed by `trellis token`)",
            path.display()
        );
    }
    Ok(Token(token.to_string()))
}

/// Writes `text` to `path` readable by the owner only (it may hold a token).
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        let mut file = options.open(path)?;
        // `mode` applies to new files only; an existing one is tightened too.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        file.write_all(text.as_bytes())
    }
    #[cfg(not(unix))]
    options.open(path)?.write_all(text.as_bytes())
}

/// Renders the bootstrap and writes it out.
pub fn run(args: &BootstrapArgs) -> anyhow::Result<ExitCode> {
    let yaml = render(&args.spec()?)?;
    match &args.output {
        Some(path) => {
            write_private(path, &yaml).with_context(|| format!("writing {}", path.display()))?
        }
        None => print!("{yaml}"),
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_port_map(s: &str) -> Result<BTreeMap<u16, u16>, String> {
    trellis::registry::parse_port_map(s)
        .map_err(|bad| format!("invalid port mapping {bad:?}: expected PORT=LISTEN,..."))
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(format!("invalid label {s:?}: expected KEY=VALUE")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;

    fn parse(args: &[&str]) -> BootstrapArgs {
        let cli = Cli::try_parse_from(["trellis", "bootstrap"].iter().chain(args)).unwrap();
        match cli.command {
            crate::cli::Command::Bootstrap(b) => b,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn flags_become_the_spec() {
        let args = parse(&[
            "--service",
            "payment",
            "--label",
            "version=v2",
            "--label",
            "track=canary",
            "--app-port",
            "9000",
            "--inbound-port",
            "16006",
            "--outbound-port",
            "16001",
            "--admin-port",
            "16000",
            "--xds-addr",
            "127.0.0.1:25010",
            "--node-id",
            "pay-2",
        ]);
        let spec = args.spec().unwrap();
        assert_eq!(spec.service, "payment");
        assert_eq!(spec.namespace, "default");
        assert_eq!(spec.labels.len(), 2);
        assert_eq!(spec.labels["version"], "v2");
        assert_eq!(
            (
                spec.app_port,
                spec.inbound_port,
                spec.outbound_port,
                spec.admin_port
            ),
            (9000, 16006, 16001, 16000)
        );
        assert_eq!(spec.xds_addr, "127.0.0.1:25010");
        assert_eq!(spec.node_id(), "pay-2");
    }

    #[test]
    fn topology_flags() {
        let spec = parse(&[
            "--service",
            "payment",
            "--app-port",
            "9000",
            "--locality",
            "us-east/us-east-1a",
            "--network",
            "net-1",
            "--cluster-name",
            "east",
        ])
        .spec()
        .unwrap();
        assert_eq!(spec.topology.locality.to_string(), "us-east/us-east-1a");
        assert_eq!(spec.topology.network, "net-1");
        assert_eq!(spec.topology.cluster, "east");
        let bad = ["trellis", "bootstrap", "--service", "p", "--app-port", "1"];
        let bad = bad.iter().chain(&["--locality", "a/b/c/d"]);
        assert!(Cli::try_parse_from(bad).is_err());
    }

    #[test]
    fn defaults_match_the_library() {
        let spec = parse(&["--service", "ledger", "--app-port", "8080"])
            .spec()
            .unwrap();
        let mut want = SidecarSpec::new("ledger", 8080);
        // Like Istio's sidecars, the command opens the stats port by default.
        want.stats_port = Some(15090);
        assert_eq!(spec, want);
        let off = parse(&["--service", "a", "--app-port", "1", "--stats-port", "0"]);
        assert_eq!(off.spec().unwrap().stats_port, None);
    }

    #[test]
    fn ads_mode_defaults_to_delta_and_sotw_is_one_flag_away() {
        let default = parse(&["--service", "a", "--app-port", "1"]);
        assert_eq!(default.spec().unwrap().ads_mode, AdsMode::Delta);
        let sotw = parse(&["--service", "a", "--app-port", "1", "--ads-mode", "sotw"]);
        assert_eq!(sotw.spec().unwrap().ads_mode, AdsMode::Sotw);
    }

    #[test]
    fn token_file_goes_into_the_spec_and_the_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let tok = dir.path().join("tok");
        std::fs::write(&tok, "abc.def.ghi\n").unwrap();
        let out = dir.path().join("b.yaml");
        let args = parse(&[
            "--service",
            "a",
            "--app-port",
            "1",
            "--token-file",
            tok.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]);
        assert_eq!(
            args.spec().unwrap().token,
            Some(Token("abc.def.ghi".into()))
        );
        run(&args).unwrap();
        let mode = std::fs::metadata(&out).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(std::fs::read_to_string(&out)
            .unwrap()
            .contains("Bearer abc.def.ghi"));
        std::fs::write(&tok, "").unwrap();
        let err = args.spec().unwrap_err().to_string();
        assert!(err.contains("must hold one token"), "{err}");
    }

    #[test]
    fn gateway_needs_no_app_port_and_maps_ports() {
        let args = parse(&[
            "--gateway",
            "--service",
            "ingress",
            "--label",
            "istio=ingressgateway",
            "--port-map",
            "443=18443,80=18080",
            "--listen-address",
            "127.0.0.1",
        ]);
        let spec = args.spec().unwrap();
        let gw = spec.gateway.clone().unwrap();
        assert_eq!(gw.port_map[&443], 18443);
        assert_eq!(gw.listen_address, "127.0.0.1");
        let yaml = render(&spec).unwrap();
        assert!(yaml.contains("port_map: 80=18080,443=18443"), "{yaml}");
        let cli = Cli::try_parse_from(["trellis", "bootstrap", "--service", "a"]);
        assert!(cli.is_err(), "a sidecar needs --app-port");
        assert!(!yaml.contains("endpoint_address") && !yaml.contains("upstream_bind_config"));
    }

    #[test]
    fn egress_gateway_registers_and_binds_its_upstreams() {
        let args = parse(&[
            "--gateway",
            "--service",
            "istio-egressgateway",
            "--endpoint-address",
            "127.0.0.7",
            "--upstream-bind-address",
            "127.0.0.8",
        ]);
        let yaml = render(&args.spec().unwrap()).unwrap();
        assert!(yaml.contains("endpoint_address: 127.0.0.7"), "{yaml}");
        assert!(yaml.contains("upstream_bind_config"), "{yaml}");
        assert!(yaml.contains("address: 127.0.0.8"), "{yaml}");
        let sidecar = Cli::try_parse_from([
            "trellis",
            "bootstrap",
            "--service",
            "a",
            "--app-port",
            "8080",
            "--upstream-bind-address",
            "127.0.0.8",
        ]);
        assert!(sidecar.is_err(), "--upstream-bind-address needs --gateway");
        let bad = Cli::try_parse_from([
            "trellis",
            "bootstrap",
            "--gateway",
            "--service",
            "g",
            "--endpoint-address",
            "not-an-ip",
        ]);
        assert!(bad.is_err(), "an endpoint address is an IP");
    }

    #[test]
    fn labels_need_a_key() {
        assert!(parse_label("version").is_err());
        assert!(parse_label("=v1").is_err());
        assert_eq!(parse_label("a=").unwrap(), ("a".into(), String::new()));
    }
}

#[cfg(test)]
mod ca_file_tests {
    use super::check_ca_file;

    #[test]
    fn the_pinned_file_holds_one_root_or_a_bundle_of_them() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let ca = trellis::ca::Ca::load_or_create(&trellis::ca::CaConfig {
            state_dir: state,
            plugin: None,
        })
        .unwrap();
        let root = ca.trust_bundle_pem();
        ca.begin_rotation().unwrap();
        let bundle = ca.trust_bundle_pem();
        let cases = [
            ("root.pem", root.as_str(), None),
            ("bundle.pem", bundle.as_str(), None),
            ("empty.pem", "", Some("holds no PEM certificate")),
            (
                "key.pem",
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                Some("holds no PEM certificate"),
            ),
            (
                "junk.pem",
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                Some("does not parse"),
            ),
        ];
        for (name, text, want) in cases {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            let got = check_ca_file(&path).map_err(|e| format!("{e:#}"));
            match want {
                None => assert!(got.is_ok(), "{name}: {got:?}"),
                Some(msg) => {
                    let err = got.unwrap_err();
                    assert!(err.contains(msg) && err.contains(name), "{name}: {err}");
                }
            }
        }
        assert!(check_ca_file(&dir.path().join("missing.pem")).is_err());
    }
}
