//! Which `DestinationRule` a proxy sees for a host: `exportTo` and
//! `workloadSelector` with Istio's lookup order
//! (`pilot/pkg/model/push_context.go`, `destinationRule`, and
//! `SidecarScope.DestinationRule` for workload selectors).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{DestinationRule, Host, Labels};

/// Every `DestinationRule` of one host, with the namespace of the service
/// it is for.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HostRules {
    /// The service's namespace: its `ServiceEntry`'s, else the namespace a
    /// cluster-local host names; `None` for other hosts without one.
    pub service_namespace: Option<String>,
    /// The rules, sorted by namespace and name.
    pub rules: Vec<Arc<DestinationRule>>,
}

/// Every `DestinationRule` by host, for the per-proxy lookup.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DestinationRules {
    /// By canonical host.
    pub by_host: BTreeMap<Host, HostRules>,
}

/// A proxy as the lookup sees it.
#[derive(Debug, Clone, Copy)]
pub struct Client<'a> {
    /// Its namespace.
    pub namespace: &'a str,
    /// Its labels (workload selectors match them).
    pub labels: &'a Labels,
}

impl DestinationRule {
    /// True when its `workloadSelector` selects `labels`.
    pub fn selects(&self, labels: &Labels) -> bool {
        (self.workload_selector.as_ref())
            .is_some_and(|sel| sel.iter().all(|(k, v)| labels.get(k) == Some(v)))
    }

    /// True when it is exported to its own namespace only (`.`, or its
    /// namespace alone, or any workload-selected rule): Istio keeps such a
    /// rule out of the other namespaces' lookups.
    fn private(&self) -> bool {
        let ns = &self.origin.namespace;
        self.workload_selector.is_some()
            || (self.export_to.namespaces.as_ref())
                .is_some_and(|set| set.len() == 1 && set.contains(ns))
    }
}

impl HostRules {
    /// The rule a proxy of `client` sees, in Istio's order: a rule of its
    /// own namespace visible to it (workload-selected first); else a rule
    /// of the service's namespace exported to it; else one of the root
    /// namespace exported to it. Once the proxy's namespace has rules for
    /// the host, the search stops there, even when only workload-selected
    /// ones exist and none selects it (istiod does the same).
    pub fn visible(&self, client: Client<'_>, root: &str) -> Option<&Arc<DestinationRule>> {
        let local = |dr: &&Arc<DestinationRule>| {
            dr.origin.namespace == client.namespace
                && dr.export_to.admits(client.namespace)
                // A root proxy's local rules are the root's private ones.
                && (client.namespace != root || dr.private())
        };
        if self.rules.iter().any(|dr| local(&dr)) {
            let mut here = self.rules.iter().filter(local);
            let selected = here.clone().find(|dr| dr.selects(client.labels));
            return selected.or_else(|| here.find(|dr| dr.workload_selector.is_none()));
        }
        let exported = |ns: &str| {
            (self.rules.iter()).find(|dr| {
                dr.origin.namespace == ns && !dr.private() && dr.export_to.admits(client.namespace)
            })
        };
        let service = self.service_namespace.as_deref().and_then(exported);
        service.or_else(|| exported(root))
    }

    /// The rule a proxy sees whose namespace holds no rule for the host and
    /// is named by no `exportTo`: what most proxies see.
    pub fn default_rule(&self, root: &str) -> Option<&Arc<DestinationRule>> {
        let everywhere = |ns: &str| {
            (self.rules.iter()).find(|dr| {
                dr.origin.namespace == ns && !dr.private() && dr.export_to.namespaces.is_none()
            })
        };
        let service = self.service_namespace.as_deref().and_then(everywhere);
        service.or_else(|| everywhere(root))
    }

    /// True when some proxy may see another rule than [`Self::default_rule`].
    pub fn varies(&self, root: &str) -> bool {
        let default = self.default_rule(root);
        self.rules
            .iter()
            .any(|dr| default.is_none_or(|d| !Arc::ptr_eq(d, dr)))
    }
}

impl DestinationRules {
    /// The rule each host's proxies see by default ([`HostRules::default_rule`]).
    pub fn defaults(&self, root: &str) -> BTreeMap<Host, Arc<DestinationRule>> {
        (self.by_host.iter())
            .filter_map(|(h, r)| Some((h.clone(), Arc::clone(r.default_rule(root)?))))
            .collect()
    }

    /// Every rule, by host then namespace and name.
    pub fn all(&self) -> impl Iterator<Item = &Arc<DestinationRule>> {
        self.by_host.values().flat_map(|r| r.rules.iter())
    }

    /// The entries whose host is a wildcard (`*`, `*.example.com`).
    pub fn wildcards(&self) -> impl Iterator<Item = (&Host, &HostRules)> {
        self.by_host.range(Host::wildcards())
    }

    /// True when some rule's host is a wildcard.
    pub fn has_wildcards(&self) -> bool {
        self.wildcards().next().is_some()
    }

    /// The rules for `host`, a service's host, as istiod finds them: in
    /// each namespace, the rules of the most specific host that matches,
    /// `host` itself, else the longest wildcard that covers it
    /// (`MostSpecificHostMatch` in each step of the lookup order, see
    /// [`HostRules::visible`]); `namespace` is the service's. `None` when
    /// no wildcard rule is the most specific in any namespace: then its
    /// own entry, if any, is the answer.
    pub fn resolved(&self, host: &Host, namespace: Option<&str>) -> Option<HostRules> {
        let exact = self.by_host.get(host);
        let has_own =
            |ns: &str| exact.is_some_and(|e| e.rules.iter().any(|r| r.origin.namespace == ns));
        // Per namespace: the length of its most specific covering host, and that host's rules.
        let mut best: BTreeMap<&str, (usize, &[Arc<DestinationRule>])> = BTreeMap::new();
        for (wildcard, rules) in self.wildcards().filter(|(w, _)| w.covers(host)) {
            for dr in &rules.rules {
                let ns = dr.origin.namespace.as_str();
                let len = wildcard.as_str().len();
                if !has_own(ns) && best.get(ns).is_none_or(|(l, _)| len > *l) {
                    best.insert(ns, (len, rules.rules.as_slice()));
                }
            }
        }
        if best.is_empty() {
            return None;
        }
        let mut rules: Vec<Arc<DestinationRule>> =
            exact.map(|e| e.rules.clone()).unwrap_or_default();
        for (ns, (_, list)) in best {
            rules.extend(list.iter().filter(|r| r.origin.namespace == ns).cloned());
        }
        rules.sort_by(|a, b| {
            let (a, b) = (&a.origin, &b.origin);
            (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name))
        });
        let own = exact.and_then(|e| e.service_namespace.clone());
        Some(HostRules {
            service_namespace: own.or_else(|| namespace.map(str::to_string)),
            rules,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::config::model::{Origin, VsExportTo};

    fn rule(
        ns: &str,
        name: &str,
        export: Option<&[&str]>,
        sel: Option<(&str, &str)>,
    ) -> Arc<DestinationRule> {
        Arc::new(DestinationRule {
            host: Host("payment.pay.svc.cluster.local".into()),
            traffic_policy: None,
            subsets: Vec::new(),
            export_to: VsExportTo {
                namespaces: export
                    .map(|e| e.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>()),
            },
            workload_selector: sel.map(|(k, v)| [(k.to_string(), v.to_string())].into()),
            origin: Origin {
                kind: "DestinationRule".into(),
                namespace: ns.into(),
                name: name.into(),
                file: "dr.yaml".into(),
                line: 1,
            },
        })
    }

    fn seen(rules: &HostRules, ns: &str, labels: &[(&str, &str)]) -> Option<String> {
        let labels: Labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let client = Client {
            namespace: ns,
            labels: &labels,
        };
        rules
            .visible(client, "istio-system")
            .map(|r| format!("{}/{}", r.origin.namespace, r.origin.name))
    }

    fn host_rules(rules: Vec<Arc<DestinationRule>>) -> HostRules {
        HostRules {
            service_namespace: Some("pay".into()),
            rules,
        }
    }

    #[test]
    fn own_namespace_then_service_namespace_then_root() {
        let rules = host_rules(vec![
            rule("istio-system", "mesh", None, None),
            rule("pay", "payment", Some(&["pay", "shop"]), None),
            rule("web", "web-local", Some(&["web"]), None),
        ]);
        assert_eq!(seen(&rules, "web", &[]).as_deref(), Some("web/web-local"));
        assert_eq!(seen(&rules, "shop", &[]).as_deref(), Some("pay/payment"));
        assert_eq!(seen(&rules, "pay", &[]).as_deref(), Some("pay/payment"));
        // Not exported to `other`: the root namespace's rule.
        assert_eq!(
            seen(&rules, "other", &[]).as_deref(),
            Some("istio-system/mesh")
        );
        assert_eq!(
            rules
                .default_rule("istio-system")
                .map(|r| r.origin.name.as_str()),
            Some("mesh")
        );
        assert!(rules.varies("istio-system"));
    }

    #[test]
    fn a_rule_exported_nowhere_or_elsewhere_is_not_seen() {
        let rules = host_rules(vec![
            rule("pay", "payment", Some(&[]), None),
            rule("ops", "ops", Some(&["shop"]), None),
        ]);
        assert_eq!(seen(&rules, "pay", &[]), None);
        assert_eq!(
            seen(&rules, "shop", &[]),
            None,
            "only the service's and root namespaces export"
        );
        assert_eq!(
            seen(&rules, "ops", &[]),
            None,
            "not exported to its own namespace"
        );
    }

    #[test]
    fn a_workload_selected_rule_wins_for_the_workloads_it_selects() {
        let rules = host_rules(vec![
            rule("pay", "payment", None, None),
            rule("shop", "canary", Some(&["shop"]), Some(("app", "cart"))),
            rule("shop", "shop", Some(&["shop"]), None),
        ]);
        assert_eq!(
            seen(&rules, "shop", &[("app", "cart")]).as_deref(),
            Some("shop/canary")
        );
        assert_eq!(
            seen(&rules, "shop", &[("app", "web")]).as_deref(),
            Some("shop/shop")
        );
        assert_eq!(
            seen(&rules, "web", &[("app", "cart")]).as_deref(),
            Some("pay/payment")
        );
    }

    #[test]
    fn selected_rules_alone_hide_the_exported_one_from_their_namespace() {
        // istiod stops at the proxy's namespace once it holds rules for
        // the host, and a workload-selected rule that does not select the
        // proxy leaves it none.
        let rules = host_rules(vec![
            rule("pay", "payment", None, None),
            rule("shop", "canary", Some(&["shop"]), Some(("app", "cart"))),
        ]);
        assert_eq!(seen(&rules, "shop", &[("app", "web")]), None);
        assert_eq!(
            seen(&rules, "shop", &[("app", "cart")]).as_deref(),
            Some("shop/canary")
        );
    }

    #[test]
    fn a_root_proxy_sees_the_root_private_rule_first_and_the_exported_one_last() {
        let private = host_rules(vec![
            rule("pay", "payment", None, None),
            rule("istio-system", "root", Some(&["istio-system"]), None),
        ]);
        assert_eq!(
            seen(&private, "istio-system", &[]).as_deref(),
            Some("istio-system/root")
        );
        let public = host_rules(vec![
            rule("pay", "payment", None, None),
            rule("istio-system", "root", None, None),
        ]);
        assert_eq!(
            seen(&public, "istio-system", &[]).as_deref(),
            Some("pay/payment")
        );
    }

    #[test]
    fn a_wildcard_covers_names_under_it_and_narrower_wildcards_only() {
        let h = |s: &str| Host(s.to_string());
        assert!(h("*.example.com").covers(&h("api.example.com")));
        assert!(h("*.example.com").covers(&h("*.api.example.com")));
        assert!(!h("*.example.com").covers(&h("example.com")));
        assert!(!h("*.example.com").covers(&h("*.example.com")));
        assert!(!h("*.example.com").covers(&h("api.example.org")));
        assert!(h("*").covers(&h("pay.pay.svc.cluster.local")));
        assert!(!h("api.example.com").covers(&h("api.example.com")));
    }

    #[test]
    fn each_namespace_offers_its_most_specific_match() {
        let with_host = |host: &str, r: Arc<DestinationRule>| {
            let mut r = (*r).clone();
            r.host = Host(host.to_string());
            (Host(host.to_string()), Arc::new(r))
        };
        let entries = [
            with_host("*", rule("istio-system", "mesh", None, None)),
            with_host(
                "*.svc.cluster.local",
                rule("istio-system", "local", None, None),
            ),
            with_host(
                "*.pay.svc.cluster.local",
                rule("web", "web-wide", Some(&["web"]), None),
            ),
            with_host(
                "payment.pay.svc.cluster.local",
                rule("pay", "payment", None, None),
            ),
        ];
        let mut set = DestinationRules::default();
        for (host, r) in entries {
            let e = set.by_host.entry(host).or_default();
            e.rules.push(r);
        }
        let payment = Host("payment.pay.svc.cluster.local".into());
        let rules = set.resolved(&payment, Some("pay")).unwrap();
        let names: Vec<&str> = rules.rules.iter().map(|r| r.origin.name.as_str()).collect();
        // istio-system's `*.svc.cluster.local` is more specific than its `*`.
        assert_eq!(names, ["local", "payment", "web-wide"]);
        assert_eq!(seen(&rules, "web", &[]).as_deref(), Some("web/web-wide"));
        assert_eq!(seen(&rules, "shop", &[]).as_deref(), Some("pay/payment"));
        // Another host: only the root namespace's wildcards cover it.
        let other = Host("api.example.com".into());
        let rules = set.resolved(&other, None).unwrap();
        assert_eq!(
            seen(&rules, "shop", &[]).as_deref(),
            Some("istio-system/mesh")
        );
        // Without wildcards nothing is resolved: the host's own entry stands.
        set.by_host.retain(|h, _| !h.is_wildcard());
        assert!(!set.has_wildcards());
        assert!(set.resolved(&payment, Some("pay")).is_none());
    }
}
