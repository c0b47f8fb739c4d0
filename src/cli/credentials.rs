//! `trellis credentials create`: a TLS credential for a Gateway's
//! `credentialName`, made on the spot (a new CA and a server certificate it
//! signs) in the `serve --credentials-dir` layout. For demos and tests, such
//! as docker-compose.yml's ingress gateway; production certificates come
//! from a real CA.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::demo::cert::IngressCert;

/// Flags of `trellis credentials`.
#[derive(Debug, Args)]
pub struct CredentialsArgs {
    #[command(subcommand)]
    command: CredentialsCommand,
}

#[derive(Debug, Subcommand)]
enum CredentialsCommand {
    /// Write DIR/NAMESPACE/NAME/{tls.crt,tls.key} and the CA that signed
    /// the certificate, DIR/NAMESPACE/NAME-ca.crt (replacing any).
    Create(CreateArgs),
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// The credential's name (a Gateway's `tls.credentialName`).
    name: String,
    /// A DNS name or IP the certificate is for (repeatable).
    #[arg(long = "host", required = true, value_name = "HOST")]
    hosts: Vec<String>,
    /// The Gateway's namespace.
    #[arg(long, default_value = "default")]
    namespace: String,
    /// The `--credentials-dir` of `trellis serve`.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// How long the certificate (and its CA) is valid.
    #[arg(long, default_value = "720h", value_parser = super::parse_duration)]
    ttl: Duration,
}

/// Runs `trellis credentials ...`.
pub fn run(args: &CredentialsArgs) -> anyhow::Result<ExitCode> {
    let CredentialsCommand::Create(a) = &args.command;
    let cert = IngressCert::generate(&a.hosts, a.ttl).context("making the certificate")?;
    let written = cert.write(&a.dir, &a.namespace, &a.name)?;
    eprintln!(
        "wrote {}/tls.crt and tls.key (0600), for {}; clients trust {}",
        written.credential_dir.display(),
        a.hosts.join(", "),
        written.ca_file.display()
    );
    Ok(ExitCode::SUCCESS)
}
