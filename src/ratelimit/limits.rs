//! The global rules of a mesh config, by descriptor.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::model::{Limit, RateLimitMode};
use crate::config::MeshConfig;
use crate::translate::ratelimit::descriptor;

/// One global rule as the service applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalRule {
    /// The Redis key of its counter.
    pub key: String,
    /// Its limit.
    pub limit: Limit,
}

/// Every global rule, by its full descriptor (entries in order).
#[derive(Debug, Clone, Default)]
pub struct Limits {
    by_descriptor: HashMap<Vec<(String, String)>, Arc<GlobalRule>>,
}

impl Limits {
    /// The global rules of `mesh`.
    pub fn from_mesh(mesh: &MeshConfig) -> Self {
        let mut by_descriptor = HashMap::new();
        for rl in &mesh.rate_limits {
            if !matches!(rl.mode, RateLimitMode::Global(_)) {
                continue;
            }
            for rule in &rl.rules {
                let key = format!("trellis:ratelimit:{}:{}", rl.qualified(), rule.name);
                let rule_entry = GlobalRule {
                    key,
                    limit: rule.limit,
                };
                by_descriptor.insert(descriptor(rl, rule), Arc::new(rule_entry));
            }
        }
        Limits { by_descriptor }
    }

    /// The rule a descriptor names; `None` for one no rule matches (a
    /// source that is not the rule's, a removed rule): it is not limited.
    pub fn rule(&self, entries: &[(String, String)]) -> Option<&Arc<GlobalRule>> {
        self.by_descriptor.get(entries)
    }

    /// How many global rules there are.
    pub fn len(&self) -> usize {
        self.by_descriptor.len()
    }

    /// True without global rules.
    pub fn is_empty(&self) -> bool {
        self.by_descriptor.is_empty()
    }
}
