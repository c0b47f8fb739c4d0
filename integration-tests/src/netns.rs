//! Separate hosts on one machine: network namespaces joined by veth pairs
//! to a bridge, for the tests that need a partition. Needs root, `ip`
//! (iproute2) and `nft` (nftables).
//!
//! A [`Lan`] is one bridge on the test machine plus one namespace per
//! simulated host, each with its own address in 198.18.0.0/15 (the
//! benchmarking range, RFC 2544, so it never clashes with a real network)
//! and no default route. The machine itself has the bridge's address, so the
//! test's own processes (sidecars, clients) reach every host. Every name
//! carries the test process id and a counter, so parallel test runs never
//! share a namespace, and Drop removes all of them, also when the test
//! panics.

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{bail, Context};

/// The nftables table a partition lives in, inside one host's namespace.
const PARTITION_TABLE: &str = "trellis_partition";

/// Lans made by this process so far: part of every name.
static LANS: AtomicU32 = AtomicU32::new(0);

/// One simulated host: a network namespace with one address.
#[derive(Debug, Clone)]
pub struct Host {
    /// The namespace's name (`ip netns`).
    pub ns: String,
    /// Its address on the lan.
    pub ip: Ipv4Addr,
}

impl Host {
    /// `program` run inside the namespace (`ip netns exec NS program`);
    /// `ip` execs it in place, so the child's id is the program's and
    /// killing it kills the program.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns, program]);
        cmd
    }

    /// The host's address as an [`IpAddr`].
    pub fn addr(&self) -> IpAddr {
        IpAddr::V4(self.ip)
    }

    /// Cuts this host off from `peers`: nftables in this namespace drops
    /// every packet to and from them, silently, as a broken network does
    /// (no reset, no ICMP), while the rest of the lan still reaches it.
    pub fn partition_from(&self, peers: &[Ipv4Addr]) -> anyhow::Result<()> {
        let set: Vec<String> = peers.iter().map(Ipv4Addr::to_string).collect();
        let set = set.join(", ");
        let rules = format!(
            "table inet {PARTITION_TABLE} {{\n\
             chain input {{ type filter hook input priority 0; ip saddr {{ {set} }} drop; }}\n\
             chain output {{ type filter hook output priority 0; ip daddr {{ {set} }} drop; }}\n\
             }}\n"
        );
        let file = tempfile::NamedTempFile::new()?;
        std::fs::write(file.path(), rules)?;
        let path = file.path().display().to_string();
        run(&["netns", "exec", &self.ns, "nft", "-f", &path])
            .context("partitioning with nft (Debian package nftables)")
    }

    /// Removes the partition [`Host::partition_from`] made.
    pub fn heal(&self) -> anyhow::Result<()> {
        let args = ["netns", "exec", &self.ns, "nft", "delete", "table", "inet"];
        run(&[&args[..], &[PARTITION_TABLE]].concat())
    }
}

/// A bridge on the test machine and the namespaces attached to it. Drop
/// deletes the namespaces (which deletes their veth pairs) and the bridge.
#[derive(Debug)]
pub struct Lan {
    bridge: String,
    /// The test machine's own address on the lan.
    pub gateway: Ipv4Addr,
    /// The hosts, in creation order.
    pub hosts: Vec<Host>,
}

impl Lan {
    /// A lan of `n` hosts. Fails (never skips) without root or `ip`.
    pub fn new(n: usize) -> anyhow::Result<Self> {
        let tag = format!(
            "{:x}x{}",
            std::process::id(),
            LANS.fetch_add(1, Ordering::SeqCst)
        );
        let subnet = free_subnet(&tag)?;
        let mut lan = Lan {
            bridge: format!("trb{tag}"),
            gateway: subnet_ip(subnet, 1),
            hosts: Vec::new(),
        };
        // The guard exists before anything is created, so a failure half
        // way still removes what was made.
        run(&["link", "add", &lan.bridge, "type", "bridge"])?;
        let cidr = format!("{}/24", lan.gateway);
        run(&["addr", "add", &cidr, "dev", &lan.bridge])?;
        run(&["link", "set", &lan.bridge, "up"])?;
        for i in 0..n {
            let host = Host {
                ns: format!("trellis-{tag}-{i}"),
                ip: subnet_ip(subnet, 2 + i as u8),
            };
            run(&["netns", "add", &host.ns])?;
            lan.hosts.push(host.clone());
            lan.attach(&tag, i, &host)?;
        }
        Ok(lan)
    }

    /// The veth pair of host `i`: `trvTAGi` on the bridge, `eth0` in the
    /// namespace with the host's address, and the namespace's loopback up.
    fn attach(&self, tag: &str, i: usize, host: &Host) -> anyhow::Result<()> {
        let outside = format!("trv{tag}{i}");
        let ns = host.ns.as_str();
        run(&[
            "link", "add", &outside, "type", "veth", "peer", "name", "eth0", "netns", ns,
        ])?;
        run(&["link", "set", &outside, "master", &self.bridge, "up"])?;
        let cidr = format!("{}/24", host.ip);
        run(&["-n", ns, "addr", "add", &cidr, "dev", "eth0"])?;
        run(&["-n", ns, "link", "set", "eth0", "up"])?;
        run(&["-n", ns, "link", "set", "lo", "up"])
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for host in &self.hosts {
            if let Err(e) = run(&["netns", "del", &host.ns]) {
                eprintln!("removing namespace {}: {e:#}", host.ns);
            }
        }
        if let Err(e) = run(&["link", "del", &self.bridge]) {
            eprintln!("removing bridge {}: {e:#}", self.bridge);
        }
    }
}

/// The third octet (with the 198.18/198.19 choice in bit 8) of a /24 in
/// 198.18.0.0/15 that no interface on the machine uses yet, starting from a
/// spot chosen by `tag` so parallel runs start apart.
fn free_subnet(tag: &str) -> anyhow::Result<u16> {
    let start = tag
        .bytes()
        .fold(0u16, |h, b| h.wrapping_mul(31).wrapping_add(b.into()))
        % 512;
    for k in 0..512 {
        let subnet = (start + k) % 512;
        let prefix = format!("{}/24", subnet_ip(subnet, 0));
        let out = Command::new("ip")
            .args(["-4", "-o", "addr", "show", "to", &prefix])
            .output()
            .context("running ip (Debian package iproute2)")?;
        if out.status.success() && out.stdout.is_empty() {
            return Ok(subnet);
        }
    }
    bail!("every /24 of 198.18.0.0/15 is in use")
}

/// Address `last` in /24 number `subnet` of 198.18.0.0/15.
fn subnet_ip(subnet: u16, last: u8) -> Ipv4Addr {
    let second = 18 + (subnet >> 8) as u8;
    Ipv4Addr::new(198, second, (subnet & 0xff) as u8, last)
}

/// Runs `ip ARGS`; fails with its error output.
fn run(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip (Debian package iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_stay_in_the_benchmarking_range() {
        assert_eq!(subnet_ip(0, 1), Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(subnet_ip(511, 254), Ipv4Addr::new(198, 19, 255, 254));
    }
}
