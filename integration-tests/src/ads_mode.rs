//! Which ADS protocol the test sidecars speak (`trellis bootstrap
//! --ads-mode`). By default the bootstrap's own default; a test process can
//! choose with [`use_ads_mode`] (as `tests/delta.rs` does), and
//! `TRELLIS_TEST_ADS_MODE=delta|sotw` chooses for any run, e.g. the whole
//! suite: `TRELLIS_TEST_ADS_MODE=delta cargo test -p trellis-integration-tests`.

use std::sync::{Mutex, PoisonError};

static CHOSEN: Mutex<Option<&'static str>> = Mutex::new(None);

/// Makes every sidecar this process starts from now on speak `mode`
/// (`delta` or `sotw`).
pub fn use_ads_mode(mode: &'static str) {
    *CHOSEN.lock().unwrap_or_else(PoisonError::into_inner) = Some(mode);
}

/// The `--ads-mode` to pass, if any: the process's choice, else
/// `TRELLIS_TEST_ADS_MODE`.
pub fn ads_mode() -> Option<String> {
    let chosen = *CHOSEN.lock().unwrap_or_else(PoisonError::into_inner);
    chosen
        .map(str::to_string)
        .or_else(|| std::env::var("TRELLIS_TEST_ADS_MODE").ok())
        .filter(|m| !m.is_empty())
}
