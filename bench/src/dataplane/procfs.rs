//! What the bench reads from `/proc`: a process's CPU time, the machine's
//! load average.

use anyhow::Context;

/// Linux's USER_HZ: `/proc/PID/stat` counts CPU time in 1/100 s.
const TICKS_PER_S: f64 = 100.0;

/// User plus system CPU seconds of process `pid` so far
/// (`/proc/PID/stat` fields 14 and 15, utime and stime).
pub fn cpu_s(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    cpu_s_of(&stat).with_context(|| format!("bad /proc/{pid}/stat"))
}

/// [`cpu_s`] of the text of a `/proc/PID/stat`: the fields after the
/// parenthesised command name (which may hold spaces) start at field 3.
fn cpu_s_of(stat: &str) -> Option<f64> {
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / TICKS_PER_S)
}

/// The one-minute load average (`/proc/loadavg`).
pub fn load1() -> anyhow::Result<f64> {
    let text = std::fs::read_to_string("/proc/loadavg")?;
    let first = text
        .split_whitespace()
        .next()
        .context("empty /proc/loadavg")?;
    Ok(first.parse()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_from_a_stat_line() {
        // utime 250 and stime 50 ticks, behind a command name with spaces.
        let stat = "4242 (envoy main) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 50 0 0 20 0 3 0";
        assert_eq!(cpu_s_of(stat), Some(3.0));
        assert_eq!(cpu_s_of("4242 (envoy) S 1"), None);
    }
}
