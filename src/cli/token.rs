//! `trellis token`: mint (or revoke) a workload token with the control
//! plane's token key in `--state-dir`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use trellis::ca::token::TokenAuthority;

/// Flags of `trellis token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The service the token is for (required unless --revoke).
    #[arg(long, required_unless_present = "revoke")]
    service: Option<String>,
    /// Its namespace.
    #[arg(long, default_value = "default")]
    namespace: String,
    /// Its service account (default: the service name).
    #[arg(long)]
    service_account: Option<String>,
    /// How long the token is valid (e.g. 24h, 30m).
    #[arg(long, default_value = "24h", value_parser = super::parse_duration)]
    ttl: Duration,
    /// Trust domain written into the token's subject (the SPIFFE ID).
    #[arg(long, default_value = "cluster.local")]
    trust_domain: String,
    /// The control plane's state directory (holds the token key).
    #[arg(long, value_name = "DIR", default_value = "./.trellis")]
    state_dir: PathBuf,
    /// Write the token to FILE (mode 0600) instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    /// Revoke the token with this id (`jti`) instead of minting one.
    #[arg(long, value_name = "JTI", conflicts_with_all = ["service", "service_account"])]
    revoke: Option<String>,
}

/// Prints a new token on stdout (or records a revocation).
pub fn run(args: &TokenArgs) -> anyhow::Result<ExitCode> {
    let authority = TokenAuthority::load_or_create(&args.state_dir)
        .context("loading the token key")?
        .with_trust_domain(&args.trust_domain);
    if let Some(jti) = &args.revoke {
        authority.revoke(jti).context("revoking the token")?;
        eprintln!("revoked token {jti}; streams that present it are refused from now on");
        return Ok(ExitCode::SUCCESS);
    }
    let service = args.service.as_deref().unwrap_or_default();
    let sa = args.service_account.as_deref().unwrap_or(service);
    let token = authority
        .issue(service, &args.namespace, sa, args.ttl)
        .context("issuing the token")?;
    // The id and expiry (never the token) on stderr, for `--revoke` later.
    if let Ok(claims) = authority.verify(&token, std::time::SystemTime::now()) {
        eprintln!(
            "token for {} (id {}, expires at unix time {})",
            claims.sub, claims.jti, claims.exp
        );
    }
    match &args.output {
        Some(path) => write_private(path, &format!("{token}\n"))
            .with_context(|| format!("writing {}", path.display()))?,
        None => println!("{token}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes `text` to `path` readable by the owner only.
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(text.as_bytes())
}
