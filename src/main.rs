//! The `trellis` command. Everything but argument handling lives in the
//! library; `cli` turns arguments into library calls and errors into exit
//! codes (`anyhow` stops here).
// FFI calls into the allocator (`release_free_memory`, `tune_allocator`),
// nothing else.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod cli;
mod demo;

/// mimalloc rather than glibc's allocator: see Cargo.toml.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[allow(unsafe_code)]
mod mimalloc_collect {
    extern "C" {
        /// mimalloc's `void mi_collect(bool force)` (`mimalloc.h`), from
        /// the C library the `mimalloc` crate links.
        pub(super) fn mi_collect(force: bool);
        /// mimalloc's `void mi_option_set(mi_option_t option, long value)`.
        pub(super) fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
        /// mimalloc's `long mi_option_get(mi_option_t option)`.
        #[cfg(test)]
        pub(super) fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
    }

    /// `mi_option_purge_delay` in `mimalloc.h`'s `mi_option_t` (the same
    /// in the v2 and v3 sources of libmimalloc-sys 0.1.49).
    pub(super) const PURGE_DELAY: std::ffi::c_int = 15;
}

/// How long mimalloc keeps a freed page resident before handing it back to
/// the OS, unless `MIMALLOC_PURGE_DELAY` says otherwise. Its default, 1 s,
/// is acted on only when the allocator is next used, so pages freed just
/// before `serve` went quiet stayed resident. With 10 ms, `serve` at
/// 10,000 delta proxies was 665–674 MB once synced against 696–719 MB (3–4 KB
/// less per proxy), its initial sync's CPU time within run-to-run noise;
/// 0 (an madvise on every freed page) saved only about 5 MB more.
const PURGE_DELAY_MS: std::ffi::c_long = 10;

/// Sets the allocator options `serve` wants, before anything else runs.
#[allow(unsafe_code)]
fn tune_allocator() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: plain integer arguments; called first thing in `main`, before
    // any other thread exists (mimalloc's option setters are not
    // synchronised).
    unsafe { mimalloc_collect::mi_option_set(mimalloc_collect::PURGE_DELAY, PURGE_DELAY_MS) }
}

/// Hands the memory mimalloc holds free back to the OS; `trellis serve`
/// calls it once rebuilds pause. mimalloc returns freed pages only after a
/// delay and only when it allocates again, so an idle control plane kept
/// its last rebuilds' transient peak resident.
#[allow(unsafe_code)]
fn release_free_memory() {
    // SAFETY: `mi_collect` takes no pointer and frees only memory the
    // allocator itself holds free; any thread may call it at any time.
    unsafe { mimalloc_collect::mi_collect(true) }
}

fn main() -> std::process::ExitCode {
    tune_allocator();
    cli::main()
}

#[cfg(test)]
mod tests {
    /// The option index is mimalloc's purge delay: in a process that did
    /// not set it, it has mimalloc v3's default of 1,000 ms.
    #[test]
    #[allow(unsafe_code)]
    fn purge_delay_option_index() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        // SAFETY: reads an option; no pointer.
        let delay =
            unsafe { super::mimalloc_collect::mi_option_get(super::mimalloc_collect::PURGE_DELAY) };
        assert_eq!(delay, 1000);
    }
}
