//! The `trellis` command. Everything but argument handling lives in the
//! library; `cli` turns arguments into library calls and errors into exit
//! codes (`anyhow` stops here).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod cli;
mod demo;

/// mimalloc rather than glibc's allocator: see Cargo.toml.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
