//! The `trellis` command. Everything but argument handling lives in the
//! library; `cli` turns arguments into library calls and errors into exit
//! codes (`anyhow` stops here).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod cli;
mod demo;

fn main() -> std::process::ExitCode {
    cli::main()
}
