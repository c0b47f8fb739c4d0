//! Gateways that select no connected gateway proxy. Which gateway proxies
//! exist is known only at run time (their labels come from `trellis
//! bootstrap --gateway --label`), so `serve` warns, not `validate`.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::config::model::Gateway;
use crate::registry::Registry;

/// The `NAMESPACE/NAME` of each Gateway no registered gateway proxy's
/// labels match.
pub(crate) fn unselected(gateways: &[Arc<Gateway>], registry: &Registry) -> BTreeSet<String> {
    let proxies: Vec<_> = (registry.sidecars().values())
        .filter(|p| p.gateway.is_some())
        .collect();
    (gateways.iter())
        .filter(|g| !proxies.iter().any(|p| g.selects(&p.labels)))
        .map(|g| g.qualified())
        .collect()
}

/// Logs the Gateways that newly select nothing (a warning with the file
/// and line) or something again, against `last`; returns the new set.
pub(crate) fn log_changes(
    last: &BTreeSet<String>,
    gateways: &[Arc<Gateway>],
    registry: &Registry,
) -> BTreeSet<String> {
    let now = unselected(gateways, registry);
    for g in gateways.iter().filter(|g| now.contains(&g.qualified())) {
        let name = g.qualified();
        if !last.contains(&name) {
            let (file, line) = (g.origin.file.display(), g.origin.line);
            tracing::warn!(
                gateway = %name,
                "{file}:{line}: Gateway {name} selects no connected gateway proxy: no gateway proxy carries the labels of its selector"
            );
        }
    }
    for name in last.difference(&now) {
        tracing::info!(gateway = %name, "Gateway {name} selects a connected gateway proxy again");
    }
    now
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::Origin;
    use crate::registry::Registry;
    use crate::registry::{GatewayNode, Proxy};
    use crate::translate::fixtures::labels;

    fn gateway(name: &str, selector: &[(&str, &str)]) -> Arc<Gateway> {
        Arc::new(Gateway {
            selector: labels(selector),
            servers: Vec::new(),
            origin: Origin {
                kind: "Gateway".into(),
                name: name.into(),
                namespace: "default".into(),
                file: "gw.yaml".into(),
                line: 1,
            },
        })
    }

    #[test]
    fn a_gateway_selects_nothing_until_a_gateway_proxy_has_its_labels() {
        let gws = [
            gateway("edge", &[("istio", "ingressgateway")]),
            gateway("other", &[("istio", "other")]),
        ];
        let mut reg = Registry::new();
        // A sidecar with the labels is not a gateway proxy.
        reg.register(Proxy {
            id: "app".into(),
            labels: labels(&[("istio", "ingressgateway")]),
            ..Default::default()
        });
        let all: BTreeSet<String> = ["default/edge".into(), "default/other".into()].into();
        assert_eq!(unselected(&gws, &reg), all);
        reg.register(Proxy {
            id: "gw".into(),
            labels: labels(&[("istio", "ingressgateway"), ("zone", "a")]),
            gateway: Some(GatewayNode::default()),
            ..Default::default()
        });
        assert_eq!(
            log_changes(&all, &gws, &reg),
            ["default/other".to_string()].into()
        );
    }
}
