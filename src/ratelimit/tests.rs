use super::Limits;
use crate::translate::ratelimit::descriptor;

#[test]
fn the_service_knows_the_global_rules_by_descriptor_only() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config-examples/rate-limits");
    let mesh = crate::config::load_dir(&dir).unwrap();
    let limits = Limits::from_mesh(&mesh);
    assert_eq!(
        limits.len(),
        1,
        "the local rules of `edge` are not the service's"
    );
    let global = (mesh.rate_limits.iter())
        .find(|r| r.origin.name == "payment-global")
        .unwrap();
    let entries = descriptor(global, &global.rules[0]);
    let rule = limits.rule(&entries).expect("known");
    assert_eq!(rule.key, "trellis:ratelimit:default/payment-global:batch");
    assert_eq!(rule.limit.capacity(), 30);
    // A caller from another namespace: the sidecar sends `source=false`.
    let mut other = entries.clone();
    if let Some(last) = other.last_mut() {
        last.1 = "false".to_string();
    }
    assert!(limits.rule(&other).is_none(), "not limited");
}
