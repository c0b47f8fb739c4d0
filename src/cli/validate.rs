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
    /// Also check that every Gateway `credentialName` resolves to a usable
    /// `DIR/NAMESPACE/NAME/{tls.crt,tls.key[,ca.crt]}`.
    #[arg(long, value_name = "DIR")]
    credentials_dir: Option<PathBuf>,
}

/// Exit 0 when valid; 1 with one diagnostic per line on stdout; 2 on I/O errors.
pub fn run(args: &ValidateArgs) -> ExitCode {
    let loaded = load_dir(&args.dir).and_then(|mesh| {
        let Some(dir) = &args.credentials_dir else {
            return Ok(mesh);
        };
        let errors = trellis::serve::credentials::validate(&mesh, dir);
        match errors.is_empty() {
            true => Ok(mesh),
            false => Err(LoadError::Invalid(trellis::config::Diagnostics(errors))),
        }
    });
    match loaded {
        Ok(mesh) => {
            // Warnings go with errors (stdout) but do not fail the check.
            for w in &mesh.warnings {
                println!("{}", w.warning());
            }
            match mesh.warnings.len() {
                0 => eprintln!("{}: valid", args.dir.display()),
                n => eprintln!("{}: valid, {n} warning(s)", args.dir.display()),
            }
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
