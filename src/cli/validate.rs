//! `trellis validate DIR`: the same loader `serve` uses, as a CI check.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use trellis::config::{load_dir_cached, LoadCache, LoadError, MeshConfig};

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
    /// Also render every declared workload's resources and have Envoy
    /// (`envoy --mode validate`, from PATH) check them; rejections are
    /// reported at the config line responsible.
    #[arg(long)]
    envoy: bool,
    /// With `--envoy`, also check a sidecar of SERVICE[.NAMESPACE] with
    /// these labels (repeatable), e.g. `--proxy payment:version=v2`.
    #[arg(long = "proxy", value_name = "SERVICE[:k=v,...]", requires = "envoy")]
    proxies: Vec<String>,
}

/// Exit 0 when valid; 1 with one diagnostic per line on stdout; 2 on I/O errors.
pub fn run(args: &ValidateArgs) -> ExitCode {
    let mut cache = LoadCache::default();
    let loaded = load_dir_cached(&args.dir, &mut cache).and_then(|mesh| {
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
            if !args.envoy {
                return ExitCode::SUCCESS;
            }
            match with_envoy(args, &mesh, &cache) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(EXIT_USAGE)
                }
            }
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

/// `--envoy`: Envoy checks what every workload would be sent. Exit 0 when
/// it accepts all, 1 with one line per rejection, 2 when it cannot run.
fn with_envoy(
    args: &ValidateArgs,
    mesh: &MeshConfig,
    cache: &LoadCache,
) -> anyhow::Result<ExitCode> {
    use trellis::render::{declared_workloads, parse_proxy_spec, Renderer};
    let envoy = trellis::preflight::find_envoy()?;
    let mut workloads = declared_workloads(mesh);
    for spec in &args.proxies {
        workloads.push(parse_proxy_spec(spec)?);
    }
    if workloads.is_empty() {
        anyhow::bail!("no workload to check: the config declares none; name one with --proxy SERVICE[:k=v,...]");
    }
    let mut renderer = Renderer::new()?;
    let rendered = renderer.render(mesh, &workloads);
    let placeholder = renderer
        .placeholder_certs()
        .context("the renderer has no placeholder certificate")?;
    let source = cache.sources();
    let provenance = trellis::translate::provenance::Provenance::build(mesh, &source);
    let sources = trellis::preflight::Sources {
        placeholder,
        provenance: &provenance,
        mesh,
        patches: renderer.patches(),
    };
    let workdir = tempfile::tempdir()?;
    let rejections = trellis::preflight::check(&envoy, &rendered, &sources, workdir.path())?;
    for r in &rejections {
        println!("{}", r.report());
    }
    let dir = args.dir.display();
    match rejections.len() {
        0 => {
            eprintln!(
                "{dir}: Envoy accepts the resources of {} proxies",
                rendered.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        n => {
            eprintln!("{dir}: Envoy rejects {n} resource(s)");
            Ok(ExitCode::FAILURE)
        }
    }
}
