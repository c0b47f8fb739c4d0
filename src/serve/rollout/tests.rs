//! The rollout state machine and its persistence across a restart.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::state::Plan;
use super::{Rollout, RolloutMetrics};

const POLICY: &str = "apiVersion: trellis.dev/v1alpha1
kind: RolloutPolicy
metadata: {name: staged}
spec:
  canary: {selector: {matchLabels: {track: canary}}}
  bakeTime: 1h
";

fn service(port: u16) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: pay}}
spec:
  hosts: [pay]
  ports: [{{number: {port}, name: http, protocol: HTTP}}]
  resolution: STATIC
"
    )
}

/// Writes the config (policy + a service on `port`) and offers it.
fn offer(r: &Rollout, dir: &Path, n: u64, port: u16, policy: bool) {
    std::fs::write(dir.join("svc.yaml"), service(port)).unwrap();
    let p = dir.join("policy.yaml");
    if policy {
        std::fs::write(&p, POLICY).unwrap();
    } else {
        let _ = std::fs::remove_file(&p);
    }
    let mesh = crate::config::load_dir(dir).unwrap();
    r.offer(n, Arc::new(mesh), dir);
}

fn port_of(plan_mesh: &crate::config::MeshConfig) -> u16 {
    plan_mesh.services.values().next().unwrap().ports[0].number
}

fn split(r: &Rollout) -> Option<(u16, u16)> {
    match r.plan(&Arc::default()) {
        Plan::Split { canary, rest, .. } => Some((port_of(&canary), port_of(&rest))),
        Plan::All(_) => None,
    }
}

#[test]
fn a_new_generation_bakes_then_is_promoted_or_aborted() {
    let cfg = tempfile::tempdir().unwrap();
    let r = Rollout::open(None, RolloutMetrics::default());
    offer(&r, cfg.path(), 1, 80, true);
    assert_eq!(split(&r), None, "the first config is good at once");
    offer(&r, cfg.path(), 2, 81, true);
    assert_eq!(split(&r), Some((81, 80)));
    // An edit during the bake supersedes it, from the same good generation.
    offer(&r, cfg.path(), 3, 82, true);
    assert_eq!(split(&r), Some((82, 80)));
    r.finish(false, "bad", "operator").unwrap();
    assert_eq!(split(&r), None);
    let s = r.snapshot();
    assert_eq!(s.good.as_ref().unwrap().number, 1);
    let outcomes: Vec<(u64, &str)> = s
        .history
        .iter()
        .map(|e| (e.generation, e.outcome.as_str()))
        .collect();
    assert_eq!(outcomes, [(3, "failed"), (2, "superseded"), (1, "applied")]);
    assert_eq!(s.history[0].reason.as_deref(), Some("bad"));
    assert!(
        r.finish(false, "again", "operator").is_err(),
        "nothing to abort"
    );
    // The next edit starts a new rollout; promotion makes it good.
    offer(&r, cfg.path(), 4, 83, true);
    assert_eq!(split(&r), Some((83, 80)));
    r.finish(true, "bake time over", "bake").unwrap();
    assert_eq!(r.snapshot().good.unwrap().number, 4);
    // Without a policy a generation goes to everyone at once.
    offer(&r, cfg.path(), 5, 84, false);
    assert_eq!(split(&r), None);
}

#[test]
fn only_canary_nodes_are_canaries() {
    let cfg = tempfile::tempdir().unwrap();
    let r = Rollout::open(None, RolloutMetrics::default());
    offer(&r, cfg.path(), 1, 80, true);
    offer(&r, cfg.path(), 2, 81, true);
    r.set_canary(vec!["b".into(), "a".into()]);
    assert!(r.is_canary_node("a") && r.is_canary_node("b"));
    assert!(!r.is_canary_node("c"));
    r.finish(true, "ok", "operator").unwrap();
    assert!(!r.is_canary_node("a"), "no rollout, no canary");
}

#[test]
fn the_same_files_read_again_keep_the_bake_and_its_canary_set() {
    let cfg = tempfile::tempdir().unwrap();
    let r = Rollout::open(None, RolloutMetrics::default());
    offer(&r, cfg.path(), 1, 80, true);
    offer(&r, cfg.path(), 2, 81, true);
    r.set_canary(vec!["a".into()]);
    let ends = r.bake_ends_at();
    // A watcher reporting one edit twice: no new rollout.
    offer(&r, cfg.path(), 3, 81, true);
    assert!(r.is_canary_node("a"), "a NACK now is still the rollout's");
    assert_eq!(r.bake_ends_at(), ends, "the bake goes on");
    let s = r.snapshot();
    assert_eq!(s.current.as_ref().map(|c| c.generation.number), Some(3));
    assert!(s.history.iter().all(|e| e.outcome != "superseded"));
    // A real edit supersedes it; the canary set holds until a rebuild.
    offer(&r, cfg.path(), 4, 82, true);
    assert!(r.is_canary_node("a"));
    assert_eq!(split(&r), Some((82, 80)));
}

#[test]
fn a_restart_resumes_the_bake_with_the_saved_good_generation() {
    let (cfg, state) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let r = Rollout::open(Some(state.path()), RolloutMetrics::default());
    offer(&r, cfg.path(), 1, 80, true);
    offer(&r, cfg.path(), 2, 81, true);
    let ends = r.bake_ends_at().unwrap();
    drop(r);
    // The same files in the config dir: the bake goes on, same deadline.
    let again = Rollout::open(Some(state.path()), RolloutMetrics::default());
    std::fs::write(cfg.path().join("svc.yaml"), service(81)).unwrap();
    let mesh = crate::config::load_dir(cfg.path()).unwrap();
    assert_eq!(
        again.number_before(&mesh, cfg.path()),
        1,
        "the bake keeps its number"
    );
    offer(&again, cfg.path(), 2, 81, true);
    assert_eq!(split(&again), Some((81, 80)));
    let resumed = again.bake_ends_at().unwrap();
    let drift = resumed
        .duration_since(ends)
        .unwrap_or_else(|e| e.duration());
    assert!(drift < Duration::from_millis(2), "{drift:?}");
    assert!(resumed > SystemTime::now() + Duration::from_secs(3000));
    drop(again);
    // Files changed while it was down: a new rollout from the saved good.
    let third = Rollout::open(Some(state.path()), RolloutMetrics::default());
    std::fs::write(cfg.path().join("svc.yaml"), service(85)).unwrap();
    let mesh = crate::config::load_dir(cfg.path()).unwrap();
    assert_eq!(third.number_before(&mesh, cfg.path()), 2, "numbers go on");
    offer(&third, cfg.path(), 3, 85, true);
    assert_eq!(split(&third), Some((85, 80)));
    third.finish(true, "ok", "operator").unwrap();
    drop(third);
    let fourth = Rollout::open(Some(state.path()), RolloutMetrics::default());
    offer(&fourth, cfg.path(), 4, 85, true);
    assert_eq!(split(&fourth), None, "the promoted generation is good");
}
