//! `trellis validate DIR`: the same loader `serve` uses, as a CI check.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use trellis::config::{load_dir, LoadError};

use super::EXIT_USAGE;

/// Flags of `trellis validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The config directory (every *.yaml / *.yml under it, recursively).
    dir: PathBuf,
}

/// Exit 0 when valid; 1 with one diagnostic per line on stdout; 2 on I/O errors.
pub fn run(args: &ValidateArgs) -> ExitCode {
    match load_dir(&args.dir) {
        Ok(_) => {
            eprintln!("{}: valid", args.dir.display());
            ExitCode::SUCCESS
        }
        Err(LoadError::Invalid(diags)) => {
            println!("{diags}");
            eprintln!("{}: {} error(s)", args.dir.display(), diags.0.len());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}
