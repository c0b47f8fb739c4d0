//! The docker-compose setup, statically: `docker-compose.yml` parses with a
//! compose parser, every file it mounts exists, the sidecar bootstraps in
//! `deploy/envoy` are what `trellis bootstrap` writes today and Envoy
//! accepts them, and they, Prometheus and the mesh config agree with the
//! compose topology. The live half (dashboard metrics exist) is in
//! `dashboard.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use trellis_integration_tests::envoy::envoy_validate;
use trellis_integration_tests::trellis::{run_trellis, trellis_bin};
use trellis_integration_tests::*;
use yaml_serde::Value;

fn root_file(rel: &str) -> PathBuf {
    repo_root().join(rel)
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut value: Value =
        yaml_serde::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // Compose files share settings with `<<: *anchor` merge keys.
    value.apply_merge().unwrap();
    value
}

fn compose() -> Value {
    yaml(&root_file("docker-compose.yml"))
}

fn services(compose: &Value) -> BTreeMap<String, Value> {
    let map = compose["services"].as_mapping().expect("services");
    map.iter()
        .map(|(k, v)| (k.as_str().unwrap().to_string(), v.clone()))
        .collect()
}

/// `(app service, sidecar service)` pairs: sidecars join their app's
/// network namespace with `network_mode: service:APP` (the gateway, an
/// Envoy too, has a network of its own).
fn sidecars(services: &BTreeMap<String, Value>) -> Vec<(String, String)> {
    services
        .iter()
        .filter(|(_, s)| {
            s["image"]
                .as_str()
                .is_some_and(|i| i.starts_with("envoyproxy/envoy"))
                && s.get("network_mode").is_some()
        })
        .map(|(name, s)| {
            let mode = s["network_mode"].as_str().unwrap_or_default();
            let app = mode
                .strip_prefix("service:")
                .unwrap_or_else(|| panic!("{name}: network_mode {mode:?} is not service:APP"));
            (app.to_string(), name.clone())
        })
        .collect()
}

/// Bind mounts of a service: `(host path relative to the repo, target)`.
fn bind_mounts(service: &Value) -> Vec<(String, String)> {
    let Some(volumes) = service["volumes"].as_sequence() else {
        return Vec::new();
    };
    volumes
        .iter()
        .filter_map(|v| {
            let spec = v.as_str().expect("short volume syntax");
            let mut parts = spec.split(':');
            let (src, dst) = (parts.next()?, parts.next()?);
            (src.starts_with("./") || src.starts_with('/'))
                .then(|| (src.to_string(), dst.to_string()))
        })
        .collect()
}

/// The Compose specification's own rules, as `docker compose config`
/// checks them (types, formats, unknown keys, names of networks and
/// volumes), without a docker-compose binary.
#[test]
fn compose_spec_accepts_the_file() {
    let path = root_file("docker-compose.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    let parsed = compose_spec::Compose::options()
        .apply_merge(true)
        .from_yaml_str(&text);
    let parsed = match parsed {
        Ok(c) => c,
        Err(e) => panic!("docker-compose.yml is not a valid compose file: {e}"),
    };
    if let Err(e) = parsed.validate_all() {
        panic!("docker-compose.yml: {e}");
    }
    assert!(parsed.services.contains_key("trellis"));
}

/// The compose check can fail: a key the specification does not know is
/// refused, as `docker compose config` refuses it.
#[test]
fn compose_spec_refuses_an_unknown_service_key() {
    let text = "services:\n  app:\n    image: x\n    imgae: y\n";
    let parsed = compose_spec::Compose::options().from_yaml_str(text);
    assert!(parsed.is_err(), "an unknown key was accepted");
}

#[test]
fn every_mounted_file_and_build_context_exists() {
    let compose = compose();
    let services = services(&compose);
    let mut mounts = 0;
    for (name, service) in &services {
        for (src, dst) in bind_mounts(service) {
            let path = root_file(&src);
            assert!(path.exists(), "{name} mounts {src}, which does not exist");
            // A file mounted on a file path (Docker would create a directory).
            let target_is_file = Path::new(&dst).extension().is_some();
            assert_eq!(path.is_file(), target_is_file, "{name}: {src} → {dst}");
            mounts += 1;
        }
        if let Some(context) = service["build"].as_str() {
            assert!(root_file(context).join("Dockerfile").is_file(), "{name}");
        }
    }
    assert!(
        mounts >= 8,
        "only {mounts} bind mounts: did the file change shape?"
    );
    for tool in ["prometheus", "grafana", "jaeger", "trellis", "loadgen"] {
        assert!(services.contains_key(tool), "no {tool} service");
    }
}

#[test]
fn sidecars_run_envoy_1_40_from_the_deploy_bootstraps() {
    let compose = compose();
    let services = services(&compose);
    let pairs = sidecars(&services);
    let apps: Vec<&str> = pairs.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(apps, ["frontend", "ledger", "payment-v1", "payment-v2"]);
    for (app, sidecar) in &pairs {
        let s = &services[sidecar];
        assert_eq!(s["image"].as_str(), Some("envoyproxy/envoy:v1.40.0"));
        let mounts = bind_mounts(s);
        let want = format!("./deploy/envoy/{app}.yaml");
        assert!(
            mounts
                .iter()
                .any(|(src, dst)| *src == want && dst == "/etc/envoy/envoy.yaml"),
            "{sidecar} must mount {want}: {mounts:?}"
        );
        // The bootstrap's inbound address is the app container's fixed IP,
        // the address other sidecars get over EDS.
        let ip = services[app]["networks"]["mesh"]["ipv4_address"].as_str();
        let bootstrap = yaml(&root_file(&want));
        let md = &bootstrap["node"]["metadata"];
        assert_eq!(md["inbound_address"].as_str(), ip, "{app}");
        let xds = &bootstrap["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]
            ["lb_endpoints"][0]["endpoint"]["address"]["socket_address"];
        assert_eq!(xds["address"].as_str(), Some("trellis"), "{app}");
        assert_eq!(xds["port_value"].as_u64(), Some(15010), "{app}");
    }
}

#[test]
fn deploy_bootstraps_are_what_trellis_bootstrap_writes_and_envoy_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(root_file("deploy/envoy/generate.sh"))
        .arg(dir.path())
        .env("TRELLIS", trellis_bin().unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut files = 0;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let fresh = entry.unwrap().path();
        let name = fresh.file_name().unwrap().to_str().unwrap().to_string();
        let committed = root_file(&format!("deploy/envoy/{name}"));
        let want = std::fs::read_to_string(&fresh).unwrap();
        let have = std::fs::read_to_string(&committed).unwrap_or_default();
        assert!(
            have == want,
            "deploy/envoy/{name} is stale; regenerate with \
             `TRELLIS=target/debug/trellis deploy/envoy/generate.sh`"
        );
        envoy_validate(&committed).unwrap();
        files += 1;
    }
    assert_eq!(files, 5);
}

/// The string items of a compose `command` list.
fn command(service: &Value) -> Vec<String> {
    let items = service["command"].as_sequence().expect("command list");
    items
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// The value of `--FLAG=VALUE` in a command.
fn flag(cmd: &[String], name: &str) -> String {
    let prefix = format!("--{name}=");
    let found = cmd.iter().find_map(|a| a.strip_prefix(&prefix));
    found
        .unwrap_or_else(|| panic!("no {prefix} in {cmd:?}"))
        .to_string()
}

/// The ingress gateway: Envoy 1.40 on the `trellis bootstrap --gateway`
/// file (checked above with the sidecars' ones), labelled for the Gateway
/// of deploy/mesh, publishing the ports its --port-map listens on; the
/// control plane reads credentials where `gateway-cert` writes them.
#[test]
fn ingress_gateway_runs_the_gateway_bootstrap_with_its_certificate() {
    let compose = compose();
    let services = services(&compose);
    let gw = &services["ingress-gateway"];
    assert_eq!(gw["image"].as_str(), Some("envoyproxy/envoy:v1.40.0"));
    let src = "./deploy/envoy/ingress-gateway.yaml".to_string();
    assert!(bind_mounts(gw).contains(&(src.clone(), "/etc/envoy/envoy.yaml".into())));
    let md = yaml(&root_file(&src))["node"]["metadata"].clone();
    assert_eq!(md["gateway"].as_str(), Some("true"));
    assert_eq!(md["labels"]["istio"].as_str(), Some("ingressgateway"));
    assert_eq!(md["port_map"].as_str(), Some("80=8080,443=8443"));
    let ports: Vec<&str> = (gw["ports"].as_sequence().unwrap().iter())
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(ports, ["8443:8443", "8080:8080"]);
    let mesh = std::fs::read_to_string(root_file("deploy/mesh/ingress.yaml")).unwrap();
    assert!(
        mesh.contains("istio: ingressgateway"),
        "the Gateway selects it"
    );

    let cert = command(&services["gateway-cert"]);
    let serve = command(&services["trellis"]);
    let cred_dir = flag(&cert, "dir");
    assert_eq!(flag(&serve, "credentials-dir"), cred_dir);
    let on_state =
        |s: &Value| format!("{:?}", s["volumes"]).contains("trellis-state:/var/lib/trellis");
    assert!(cred_dir.starts_with("/var/lib/trellis/"));
    assert!(on_state(&services["gateway-cert"]) && on_state(&services["trellis"]));
    let dep = &services["trellis"]["depends_on"]["gateway-cert"]["condition"];
    assert_eq!(dep.as_str(), Some("service_completed_successfully"));
}

/// `gateway-cert`'s command, run here into a temp dir, makes a credential
/// `trellis validate --credentials-dir` accepts for deploy/mesh; without
/// it the Gateway's credentialName is reported missing.
#[test]
fn the_gateway_certificate_command_satisfies_the_mesh_config() {
    let compose = compose();
    let services = services(&compose);
    let dir = tempfile::tempdir().unwrap();
    let mesh = root_file("deploy/mesh");
    let (mesh, creds) = (mesh.to_str().unwrap(), dir.path().to_str().unwrap());
    let (code, out, err) = run_trellis(&["validate", "--credentials-dir", creds, mesh]).unwrap();
    assert_eq!(code, 1, "no credential yet: {out}{err}");
    assert!(
        format!("{out}{err}").contains("credentialName"),
        "{out}{err}"
    );
    let mut cmd = command(&services["gateway-cert"]);
    let at = cmd.iter().position(|a| a.starts_with("--dir=")).unwrap();
    cmd[at] = format!("--dir={creds}");
    let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let (code, out, err) = run_trellis(&args).unwrap();
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run_trellis(&["validate", "--credentials-dir", creds, mesh]).unwrap();
    assert_eq!(code, 0, "{out}{err}");
    let ca = dir.path().join("default/ingress-cert-ca.crt");
    assert!(std::fs::read_to_string(ca)
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
}

#[test]
fn prometheus_scrapes_trellis_and_every_sidecar_stats_port() {
    let compose = compose();
    let services = services(&compose);
    let prom = yaml(&root_file("deploy/prometheus.yml"));
    let mut targets = Vec::new();
    for job in prom["scrape_configs"].as_sequence().unwrap() {
        for sc in job["static_configs"].as_sequence().unwrap() {
            for t in sc["targets"].as_sequence().unwrap() {
                targets.push(t.as_str().unwrap().to_string());
            }
        }
    }
    let trellis_cmd = format!("{:?}", services["trellis"]["command"]);
    assert!(
        trellis_cmd.contains("--admin-addr=0.0.0.0:15014"),
        "{trellis_cmd}"
    );
    assert!(
        targets.contains(&"trellis:15014".to_string()),
        "{targets:?}"
    );
    for (app, _) in sidecars(&services) {
        let stats = yaml(&root_file(&format!("deploy/envoy/{app}.yaml")));
        let port = stats["static_resources"]["listeners"][0]["address"]["socket_address"]
            ["port_value"]
            .as_u64();
        assert_eq!(port, Some(15090), "{app}");
        assert!(
            targets.contains(&format!("{app}:15090")),
            "{app}: {targets:?}"
        );
    }
}

#[test]
fn mesh_config_is_valid_and_traces_go_to_the_jaeger_service() {
    let (code, stdout, stderr) = run_trellis(&["validate", "deploy/mesh"]).unwrap();
    // `trellis validate` resolves the path against its working directory.
    let (code, stdout, stderr) = if code == 0 {
        (code, stdout, stderr)
    } else {
        let dir = root_file("deploy/mesh");
        run_trellis(&["validate", dir.to_str().unwrap()]).unwrap()
    };
    assert_eq!(code, 0, "{stdout}{stderr}");
    let mesh = yaml(&root_file("deploy/mesh/mesh.yaml"));
    let provider = &mesh["spec"]["extensionProviders"][0]["opentelemetry"];
    assert_eq!(provider["service"].as_str(), Some("jaeger"));
    assert_eq!(provider["port"].as_u64(), Some(4317));
    let compose = compose();
    let jaeger = &services(&compose)["jaeger"];
    assert!(jaeger["image"]
        .as_str()
        .unwrap()
        .starts_with("jaegertracing/all-in-one"));
    assert_eq!(
        jaeger["environment"]["COLLECTOR_OTLP_ENABLED"].as_str(),
        Some("true")
    );
}

#[test]
fn grafana_provisioning_points_at_prometheus_and_the_dashboards() {
    let ds = yaml(&root_file(
        "deploy/grafana/provisioning/datasources/prometheus.yml",
    ));
    assert_eq!(
        ds["datasources"][0]["url"].as_str(),
        Some("http://prometheus:9090")
    );
    let uid = ds["datasources"][0]["uid"].as_str().unwrap().to_string();
    let text = std::fs::read_to_string(root_file("deploy/grafana/dashboards/mesh.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    for panel in dashboard["panels"].as_array().unwrap() {
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(
            panel["datasource"]["uid"],
            uid.as_str(),
            "{}",
            panel["title"]
        );
    }
}

/// Waits until `sidecar` ACKed every type trellis sent it; panics on a NACK.
async fn wait_all_acked(trellis: &Trellis, sidecar: &Sidecar) {
    let (acked, status) = trellis.wait_all_acked(&sidecar.spec.node_id).await;
    assert!(acked, "not all ACKed: {status}");
    let types = status["types"].as_object().into_iter().flatten();
    for (url, t) in types {
        assert!(t["last_nack"].is_null(), "{url} NACKed: {status}");
    }
}

/// The compose mesh config (canary split, STRICT mTLS, tracing to the
/// `jaeger` provider) served to real sidecars: everything ACKed, requests
/// pass, and Envoy traces to the collector cluster `jaeger:4317`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_mesh_config_is_accepted_by_real_sidecars() {
    let config = ConfigDir::new().unwrap();
    for entry in std::fs::read_dir(root_file("deploy/mesh")).unwrap() {
        config.copy_from(&entry.unwrap().path()).unwrap();
    }
    let trellis = Trellis::start(config.path()).await.unwrap();
    // Both subsets get an instance: the compose config splits 90/10, and a
    // request routed to an empty canary subset would get 503 by design.
    let _v1 = Instance::start(&trellis, "payment-service", "v1", Behavior::Ok)
        .await
        .unwrap();
    let _v2 = Instance::start(&trellis, "payment-service", "v2", Behavior::Ok)
        .await
        .unwrap();
    let client = MeshClient::start(&trellis).await.unwrap();
    for subset in ["|stable|payment-service", "|canary|payment-service"] {
        client.wait_endpoints(subset, 1).await.unwrap();
    }
    wait_all_acked(&trellis, &client.sidecar).await;
    let reply = client.get("payment-service", &[]).await.unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    let dump = client.sidecar.config_dump().await.unwrap().to_string();
    assert!(dump.contains("envoy.tracers.opentelemetry"), "no tracer");
    assert!(
        dump.contains("outbound|4317||jaeger"),
        "no collector cluster"
    );
}
