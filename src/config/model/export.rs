//! `exportTo` of a VirtualService: which namespaces see it.

use std::collections::BTreeSet;

/// The namespaces a VirtualService is exported to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VsExportTo {
    /// `None`: every namespace (`*`, or no `exportTo`); else these
    /// namespaces (`.` resolved to the resource's own; empty for `~`).
    pub namespaces: Option<BTreeSet<String>>,
}

impl VsExportTo {
    /// True when proxies in `namespace` see the VirtualService.
    pub fn admits(&self, namespace: &str) -> bool {
        self.namespaces
            .as_ref()
            .is_none_or(|n| n.contains(namespace))
    }

    /// True when some namespace does not see it.
    pub fn is_restricted(&self) -> bool {
        self.namespaces.is_some()
    }
}
