//! `trellis ratelimit`: the rate-limit service of global `RateLimit`s.
//!
//! Sidecars' `envoy.filters.http.ratelimit` filters call it
//! (`envoy.service.ratelimit.v3.RateLimitService`, domain `trellis`) with
//! the descriptor of one rule ([`crate::translate::ratelimit::descriptor`]).
//! It keeps no counter of its own: each check is one Lua script in Redis
//! (GCRA, [`gcra`]), so any number of these processes share one count
//! per rule. It reads the `RateLimit`s of the mesh config directory and
//! reloads them when the directory changes. The control plane is never
//! asked: it is not in the request path.

pub mod gcra;
pub mod limits;
pub mod redis;
pub mod server;

pub use limits::Limits;
pub use server::RateLimitServer;

/// Errors of the rate-limit service.
#[derive(Debug, thiserror::Error)]
pub enum RateLimitError {
    /// Redis could not be reached or answered with an error.
    #[error("redis: {0}")]
    Redis(String),
    /// The mesh config could not be loaded.
    #[error("config: {0}")]
    Config(#[from] crate::config::LoadError),
    /// A certificate file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests;
