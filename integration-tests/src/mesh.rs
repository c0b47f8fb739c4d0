//! Config directories for `trellis serve`, and YAML snippets tests share.

use std::path::{Path, PathBuf};

/// A temporary config directory, removed on drop.
#[derive(Debug)]
pub struct ConfigDir {
    dir: tempfile::TempDir,
}

impl ConfigDir {
    /// An empty directory.
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self {
            dir: tempfile::tempdir()?,
        })
    }

    /// A directory holding `files` (name, YAML).
    pub fn with(files: &[(&str, &str)]) -> anyhow::Result<Self> {
        let me = Self::new()?;
        for (name, yaml) in files {
            me.write(name, yaml)?;
        }
        Ok(me)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Path of a file in it.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a file in place (truncate and write, as `echo > f` does).
    pub fn write(&self, name: &str, yaml: &str) -> anyhow::Result<()> {
        let path = self.file(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, yaml)?;
        Ok(())
    }

    /// Replaces a file atomically (write a temporary file, then rename, as
    /// editors and `git checkout` do).
    pub fn replace(&self, name: &str, yaml: &str) -> anyhow::Result<()> {
        let tmp = self.file(&format!(".{name}.tmp"));
        std::fs::write(&tmp, yaml)?;
        std::fs::rename(tmp, self.file(name))?;
        Ok(())
    }

    /// Copies a file from elsewhere (e.g. Istio's samples) into the directory.
    pub fn copy_from(&self, src: &Path) -> anyhow::Result<()> {
        let name = src
            .file_name()
            .ok_or_else(|| anyhow::anyhow!("no file name in {}", src.display()))?;
        std::fs::copy(src, self.dir.path().join(name))?;
        Ok(())
    }
}

/// A DestinationRule for `host` with one subset per version (`version: vN`).
pub fn subsets_rule(host: &str, versions: &[&str]) -> String {
    let mut y = format!(
        "apiVersion: networking.istio.io/v1beta1\nkind: DestinationRule\nmetadata:\n  name: {host}\nspec:\n  host: {host}\n  subsets:\n"
    );
    for v in versions {
        y.push_str(&format!("  - name: {v}\n    labels:\n      version: {v}\n"));
    }
    y
}

/// A VirtualService for `host` splitting over subsets by weight.
pub fn weighted_routes(host: &str, split: &[(&str, u32)]) -> String {
    let mut y = format!(
        "apiVersion: networking.istio.io/v1beta1\nkind: VirtualService\nmetadata:\n  name: {host}\nspec:\n  hosts:\n  - {host}\n  http:\n  - route:\n"
    );
    for (subset, weight) in split {
        y.push_str(&format!(
            "    - destination:\n        host: {host}\n        subset: {subset}\n      weight: {weight}\n"
        ));
    }
    y
}

/// A mesh-wide `Telemetry` that turns on the built-in JSON access log
/// (`envoy`), as Istio users do: access logs are off by default.
pub const ACCESS_LOGS_ON: &str = "apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata:
  name: access-logs
  namespace: istio-system
spec:
  accessLogging:
  - providers:
    - name: envoy
";
