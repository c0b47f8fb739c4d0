//! A root rotation shared by replicas: the record every replica follows
//! (`PREFIX/v1/trust/rotation`) and the pure rules around it: which phase
//! comes next, which tag a proxy's SDS ACK must carry before the driver
//! moves on, and which of a proxy's status records counts when several
//! replicas published one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::StatusRecord;

/// The phase every replica's CA must be in (the single-replica phases).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SharedPhase {
    /// Both CAs' roots trusted; the current CA still signs.
    NewRootTrusted,
    /// The new CA signs; both roots still trusted.
    NewRootActive,
    /// Only the new CA's roots are trusted.
    Finished,
}

impl SharedPhase {
    /// The phase after this one.
    pub fn next(self) -> Option<SharedPhase> {
        match self {
            SharedPhase::NewRootTrusted => Some(SharedPhase::NewRootActive),
            SharedPhase::NewRootActive => Some(SharedPhase::Finished),
            SharedPhase::Finished => None,
        }
    }

    /// The name in logs, `/debug/ca` and tags.
    pub fn as_str(self) -> &'static str {
        match self {
            SharedPhase::NewRootTrusted => "new-root-trusted",
            SharedPhase::NewRootActive => "new-root-active",
            SharedPhase::Finished => "finished",
        }
    }
}

/// The rotation every replica follows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationRecord {
    /// The CA rotated from: its identity ([`crate::ca::Ca::identity`]).
    pub from: String,
    /// The CA rotated to (the staged `next/` files' identity).
    pub to: String,
    /// The roots mark of the CA rotated to (what `trust/roots` holds once
    /// the rotation is finished).
    pub to_roots: String,
    /// The phase every replica applies.
    pub phase: SharedPhase,
    /// Stop after the first phase (`trellis ca rotate --begin-only`).
    #[serde(default)]
    pub begin_only: bool,
    /// Why the driver stopped (phase not ACKed in time, or `begin_only`);
    /// `POST /ca/rotate` on any replica resumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stalled: Option<String>,
    /// The replica whose admin API asked for it.
    pub requested_by: String,
    /// When it was asked for (seconds since the Unix epoch).
    pub started: u64,
}

impl RotationRecord {
    /// True while a driver has work to do.
    pub fn in_progress(&self) -> bool {
        self.phase != SharedPhase::Finished && self.stalled.is_none()
    }

    /// What a proxy's status carries once its ACKed SDS was built in this
    /// rotation's current phase.
    pub fn tag(&self) -> String {
        let short: String = self.to.chars().filter(|c| *c != ',').take(16).collect();
        format!("{}@{short}", self.phase.as_str())
    }

    /// The record once the driver moved to `phase`.
    pub fn advanced(&self, phase: SharedPhase) -> RotationRecord {
        RotationRecord {
            phase,
            ..self.clone()
        }
    }
}

/// The nodes that have not yet ACKed SDS built for `tag`, among other
/// replicas' records. A node known to several replicas (it moved, and a dead
/// or old replica still holds its record) counts by its newest connected
/// stream; nodes in `own` are judged by this replica itself.
pub fn peers_lagging(
    records: &[StatusRecord],
    own: &dyn Fn(&str) -> bool,
    tag: &str,
) -> Vec<String> {
    let mut newest: BTreeMap<&str, &StatusRecord> = BTreeMap::new();
    for record in records.iter().filter(|r| r.connected) {
        let later = |old: &&StatusRecord| old.connected_at >= record.connected_at;
        if !newest.get(record.node.as_str()).is_some_and(later) {
            newest.insert(&record.node, record);
        }
    }
    newest
        .into_iter()
        .filter(|(node, _)| !own(node))
        .filter(|(_, r)| r.trust.as_deref() != Some(tag))
        .map(|(node, r)| format!("{node} (on {})", r.replica))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> RotationRecord {
        RotationRecord {
            from: "old".into(),
            to: "aaaa,bbbb/cccc".into(),
            to_roots: "aaaa,bbbb".into(),
            phase: SharedPhase::NewRootTrusted,
            begin_only: false,
            stalled: None,
            requested_by: "r1".into(),
            started: 1,
        }
    }

    fn status(node: &str, replica: &str, at: u64, trust: Option<&str>) -> StatusRecord {
        StatusRecord {
            node: node.into(),
            replica: replica.into(),
            connected: true,
            connected_at: Some(at),
            trust: trust.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn phases_go_forward_to_finished_and_tags_name_phase_and_target() {
        let r = record();
        assert!(r.in_progress());
        assert_eq!(r.tag(), "new-root-trusted@aaaabbbb/cccc");
        let active = r.advanced(SharedPhase::NewRootTrusted.next().unwrap());
        assert_eq!(active.phase, SharedPhase::NewRootActive);
        assert_ne!(active.tag(), r.tag());
        let done = active.advanced(active.phase.next().unwrap());
        assert!(!done.in_progress());
        assert_eq!(done.phase.next(), None);
        let stalled = RotationRecord {
            stalled: Some("x".into()),
            ..r
        };
        assert!(!stalled.in_progress());
        let json = serde_json::to_string(&active).unwrap();
        assert!(json.contains("\"phase\":\"new-root-active\""), "{json}");
        assert_eq!(
            serde_json::from_str::<RotationRecord>(&json).unwrap(),
            active
        );
    }

    #[test]
    fn a_node_counts_by_its_newest_connected_stream_on_any_replica() {
        let tag = "t";
        let records = vec![
            // Moved from a dead r1 (stale record, no tag) to r2 (tagged).
            status("a", "r1", 10, None),
            status("a", "r2", 20, Some(tag)),
            // Only on r2, not yet ACKed.
            status("b", "r2", 5, Some("older")),
            // Disconnected: not waited for.
            StatusRecord {
                connected: false,
                ..status("c", "r2", 5, None)
            },
            // Connected to this replica: judged from its own table.
            status("d", "r2", 1, None),
        ];
        let lagging = peers_lagging(&records, &|n| n == "d", tag);
        assert_eq!(lagging, vec!["b (on r2)".to_string()]);
        // The stale record alone would hold the rotation back.
        let lagging = peers_lagging(&records[..1], &|_| false, tag);
        assert_eq!(lagging, vec!["a (on r1)".to_string()]);
    }
}
