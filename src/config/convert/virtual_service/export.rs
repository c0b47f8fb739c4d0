//! `exportTo` of a VirtualService or a ServiceEntry.

use std::collections::BTreeSet;

use super::super::{is_dns_label, Cx};
use crate::config::model::VsExportTo;

/// `exportTo`: `*` (every namespace), `.` (its own), `~` (none) or
/// namespace names; absent or empty means every namespace, as in Istio
/// with the default mesh config.
pub(crate) fn export_to(cx: &mut Cx<'_>, raw: Option<&[String]>) -> VsExportTo {
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return VsExportTo::default();
    };
    let mut set = BTreeSet::new();
    for (i, e) in raw.iter().enumerate() {
        let path = format!("spec.exportTo[{i}]");
        match e.as_str() {
            "*" => return VsExportTo::default(),
            "~" if raw.len() > 1 => cx.err(&path, "`~` (exported nowhere) must be alone"),
            "~" => {}
            "." => {
                set.insert(cx.doc.namespace.clone());
            }
            ns if is_dns_label(ns) => {
                set.insert(ns.to_string());
            }
            other => {
                let msg = format!("exportTo {other:?} must be `*`, `.`, `~` or a namespace");
                cx.err(&path, msg);
            }
        }
    }
    VsExportTo {
        namespaces: Some(set),
    }
}
