//! Which ADS protocol the test sidecars speak (`trellis bootstrap
//! --ads-mode`). By default the bootstrap's own default, delta; a test
//! process can choose with [`use_ads_mode`] (as `tests/delta.rs` does), and
//! `TRELLIS_TEST_ADS_MODE=delta|sotw` chooses for any run. `make test` runs
//! the workspace tests on the default, then the whole integration suite
//! again with `TRELLIS_TEST_ADS_MODE=sotw`, so both modes stay tested.

use std::sync::{Mutex, PoisonError};

use crate::envoy::Envoy;

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

/// The `ads_config.api_type` the sidecars of this process get: `GRPC` for
/// `sotw`, else `DELTA_GRPC` (also when nothing was chosen: the default).
pub fn expected_api_type() -> &'static str {
    match ads_mode().as_deref() {
        Some("sotw") => "GRPC",
        _ => "DELTA_GRPC",
    }
}

/// The `ads_config.api_type` a running Envoy was started with (its
/// `/config_dump` bootstrap).
pub async fn api_type(envoy: &Envoy) -> anyhow::Result<String> {
    let dump = envoy.config_dump().await?;
    dump["configs"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|c| c["bootstrap"]["dynamic_resources"]["ads_config"]["api_type"].as_str())
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("no ads_config.api_type in /config_dump"))
}
