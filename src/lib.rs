//! Trellis: a service mesh control plane for stock Envoy sidecars.
//!
//! Data flows one way (see docs/architecture.md): `config` loads and validates the
//! mesh config, `registry` tracks instances, `translate` turns both into
//! Envoy resources per proxy, `xds` serves them over ADS, `admin` shows
//! health, metrics and debug views.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admin;
pub mod assess;
pub mod bootstrap;
pub mod ca;
pub mod canonical;
pub mod config;
pub mod diff;
pub mod envoy_json;
pub mod graph;
pub mod lint;
pub mod preflight;
pub mod ratelimit;
pub mod registry;
pub mod render;
pub mod serve;
pub mod store;
pub mod translate;
pub mod xds;
