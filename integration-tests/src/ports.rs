//! Free TCP ports on 127.0.0.1 for the processes a test starts.
//!
//! A port is found by binding it and releasing it; the child binds it again a
//! moment later. Two things make that race rare: a process-wide set so that
//! parallel tests in one binary never get the same port, and picking ports
//! below the kernel's ephemeral range, which outgoing connections (Envoy to
//! its upstreams, clients to Envoy) draw their local ports from.

use std::collections::HashSet;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::Mutex;

/// Lowest port handed out by the scan below the ephemeral range.
const SCAN_FLOOR: u16 = 10_000;

struct Allocator {
    given: HashSet<u16>,
    next: u16,
    ceiling: u16,
}

static ALLOCATOR: Mutex<Option<Allocator>> = Mutex::new(None);

/// Reads the lower bound of the kernel's ephemeral port range (Linux).
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

fn bindable(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// A port on 127.0.0.1 that was free a moment ago and that no other caller
/// in this process has been given.
pub fn free_port() -> u16 {
    let mut guard = ALLOCATOR.lock().unwrap_or_else(|e| e.into_inner());
    let alloc = guard.get_or_insert_with(|| {
        let ceiling = ephemeral_low().max(SCAN_FLOOR + 1000);
        // Start at a pid-dependent place so that test binaries running at
        // the same time (other developers, other crates) rarely overlap.
        let span = u32::from(ceiling - SCAN_FLOOR);
        let offset = (std::process::id().wrapping_mul(7919)) % span;
        Allocator {
            given: HashSet::new(),
            next: SCAN_FLOOR + offset as u16,
            ceiling,
        }
    });
    for _ in SCAN_FLOOR..alloc.ceiling {
        let port = alloc.next;
        alloc.next = if port + 1 >= alloc.ceiling {
            SCAN_FLOOR
        } else {
            port + 1
        };
        if !alloc.given.contains(&port) && bindable(port) {
            alloc.given.insert(port);
            return port;
        }
    }
    // Everything below the ephemeral range is taken: let the kernel choose.
    loop {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(0);
        if port != 0 && alloc.given.insert(port) {
            return port;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_and_bindable() {
        let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
        let set: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(set.len(), ports.len());
        for p in ports {
            assert!(bindable(p), "port {p} not bindable");
        }
    }
}
