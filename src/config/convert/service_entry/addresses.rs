//! `addresses` and the rules that tie `resolution` to endpoints, ports and
//! addresses. Trellis sidecars have no transparent interception: an app
//! names its destination (`Host`, `CONNECT HOST:PORT`, or an egress port
//! listener it connects to), so what needs an original destination
//! address is refused with what to write instead.

use super::super::Cx;
use crate::config::model::{Cidr, Resolution, ServicePort};
use crate::config::raw::service_entry as raw;

/// `addresses`: IPs and CIDR blocks. A block has no meaning on an HTTP
/// port, where requests are routed by `Host` (a single address is a name
/// a request may carry, a block is not).
pub(super) fn addresses(cx: &mut Cx<'_>, written: &[String], ports: &[ServicePort]) -> Vec<Cidr> {
    let http = ports.iter().find(|p| p.protocol.is_http());
    let mut out = Vec::new();
    for (i, text) in written.iter().enumerate() {
        let path = format!("spec.addresses[{i}]");
        let Some(cidr) = Cidr::parse(text) else {
            cx.err(
                &path,
                format!("{text:?} is not an IP address or CIDR block"),
            );
            continue;
        };
        let single = cidr.prefix_len == if cidr.addr.is_ipv4() { 32 } else { 128 };
        if let (false, Some(port)) = (single, http) {
            let msg = format!("CIDR block {text:?} on a service with HTTP port {} ({}): requests are routed by their Host, which can be one address but not a block; give single addresses, or declare the ports TCP", port.number, port.name);
            cx.err(&path, msg);
            continue;
        }
        out.push(cidr);
    }
    out
}

/// What `resolution` allows: Istio's rules (DNS_ROUND_ROBIN: one
/// endpoint; NONE: no endpoints), and where NONE would need interception.
pub(super) fn check_resolution(
    cx: &mut Cx<'_>,
    se: &raw::ServiceEntry,
    resolution: Resolution,
    ports: &[ServicePort],
    addresses: &[Cidr],
) {
    match resolution {
        Resolution::DnsRoundRobin => round_robin(cx, se),
        Resolution::None => none(cx, se, ports, addresses),
        Resolution::Static | Resolution::Dns => {}
    }
}

fn round_robin(cx: &mut Cx<'_>, se: &raw::ServiceEntry) {
    if se.endpoints.len() > 1 {
        let msg = "resolution DNS_ROUND_ROBIN takes at most one endpoint (Istio's rule: Envoy connects to one name)";
        cx.err("spec.endpoints", msg);
    }
    if se.workload_selector.is_some() {
        let msg = "resolution DNS_ROUND_ROBIN resolves one name: use STATIC to select workloads";
        cx.err("spec.workloadSelector", msg);
    }
}

/// NONE: each request or tunnel goes to the host it names (the dynamic
/// forward proxy), at the port it names.
fn none(cx: &mut Cx<'_>, se: &raw::ServiceEntry, ports: &[ServicePort], addresses: &[Cidr]) {
    if !se.endpoints.is_empty() {
        let msg = "resolution NONE (Istio's default) takes no endpoints (Istio's rule): write STATIC or DNS to use them";
        cx.err("spec.endpoints", msg);
    }
    if se.workload_selector.is_some() {
        let msg =
            "resolution NONE forwards to the host a request names: use STATIC to select workloads";
        cx.err("spec.workloadSelector", msg);
    }
    for (i, port) in se.ports.iter().enumerate() {
        if port.target_port.is_some() {
            let msg = "resolution NONE connects to the port the request names (with resolution NONE Istio forwards to the original port too): drop targetPort, or write DNS to connect to another port";
            cx.err(&format!("spec.ports[{i}].targetPort"), msg);
        }
    }
    let opaque = ports.iter().find(|p| !p.protocol.is_http());
    if let (false, Some(port)) = (addresses.is_empty(), opaque) {
        let msg = format!("with resolution NONE, a TCP connection to these addresses (port {} {}) goes to its original destination address, which only transparent interception gives and Trellis sidecars do not have: tunnel with CONNECT HOST:{} through the outbound listener (https_proxy), or write resolution STATIC or DNS with endpoints so that a Sidecar egress port listener matches the addresses", port.number, port.name, port.number);
        cx.err("spec.addresses", msg);
    }
}
