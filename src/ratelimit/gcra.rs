//! GCRA (the generic cell rate algorithm) in one Redis Lua script, so a
//! check and its update are atomic whichever process runs it, and all of
//! them read one clock (Redis `TIME`).
//!
//! A rule of `requests` per `unit` with `burst` is a bucket of
//! `capacity = requests + burst` that regains one request every
//! `T = unit / requests`. The key holds the theoretical arrival time
//! (TAT, µs): a request is allowed when `max(TAT, now) + T - now <=
//! capacity × T`, and then TAT moves to `max(TAT, now) + T`. The key
//! expires when the bucket is full again.

use crate::config::model::Limit;

/// The script: KEYS[1] the counter; ARGV[1] T in µs, ARGV[2] capacity,
/// ARGV[3] hits. Returns `{allowed (0|1), remaining, µs until a request
/// would pass again (0 when allowed)}`.
pub const SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local hits = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval * hits
local window = interval * capacity
if new_tat - now > window then
  local wait = new_tat - now - window
  local remaining = math.floor((window - (tat - now)) / interval)
  if remaining < 0 then remaining = 0 end
  return {0, remaining, wait}
end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, math.floor((window - (new_tat - now)) / interval), 0}
"#;

/// The script's arguments for `limit` and `hits` requests.
pub fn args(limit: &Limit, hits: u32) -> [String; 3] {
    [
        interval_us(limit).to_string(),
        limit.capacity().to_string(),
        hits.max(1).to_string(),
    ]
}

/// `T`: microseconds between two requests at the steady rate.
pub fn interval_us(limit: &Limit) -> u64 {
    let unit = limit.unit.duration().as_micros() as u64;
    (unit / u64::from(limit.requests.max(1))).max(1)
}

/// The script's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The request may pass.
    pub allowed: bool,
    /// Requests that may still pass at once.
    pub remaining: u32,
    /// When refused: microseconds until one would pass.
    pub retry_after_us: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::LimitUnit;

    #[test]
    fn the_interval_spreads_the_unit_over_the_requests() {
        let limit = Limit {
            requests: 10,
            unit: LimitUnit::Second,
            burst: 5,
        };
        assert_eq!(interval_us(&limit), 100_000);
        assert_eq!(args(&limit, 0), ["100000", "15", "1"]);
        let hourly = Limit {
            requests: 7,
            unit: LimitUnit::Hour,
            burst: 0,
        };
        assert_eq!(interval_us(&hourly), 3_600_000_000 / 7);
    }
}
