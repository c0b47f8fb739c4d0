//! The `trellis` command. Everything but argument handling lives in the
//! library; `cli` turns arguments into library calls and errors into exit
//! codes (`anyhow` stops here).
// One FFI call into the allocator (`release_free_memory`), nothing else.
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
    }
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
    cli::main()
}
