//! `/debug/lint` of `serve`: `trellis lint` on the config in force, with
//! the observed service graph, computed at most every [`REFRESH`] per
//! config generation (linting prices every sidecar's scope, too much for
//! each refresh of the `/ui` page).

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use super::core::{lock, Core};
use crate::config::SourceIndex;
use crate::graph::Graph;
use crate::lint::{self, Input, MemoryCost};

/// How long a lint result stays for the same config generation.
const REFRESH: Duration = Duration::from_secs(30);

/// The view for `AdminState::set_lint`; holds the core weakly (the core
/// owns the admin state).
pub(super) fn view(core: &Arc<Core>) -> crate::admin::LintView {
    let core: Weak<Core> = Arc::downgrade(core);
    let cache: Mutex<Option<(u64, Instant, Value)>> = Mutex::new(None);
    Arc::new(move || {
        let Some(core) = core.upgrade() else {
            return json!({ "error": "the control plane is stopping" });
        };
        let generation = core.generation();
        let mut cached = lock(&cache);
        if let Some((g, at, value)) = cached.as_ref() {
            if *g == generation && at.elapsed() < REFRESH {
                return value.clone();
            }
        }
        let value = run(&core, generation);
        *cached = Some((generation, Instant::now(), value.clone()));
        value
    })
}

fn run(core: &Core, generation: u64) -> Value {
    let mesh = core.config.load_full();
    let source = match SourceIndex::read(&mesh.files) {
        Ok(s) => s,
        Err(e) => return json!({ "generation": generation, "error": e.to_string() }),
    };
    let observed = Graph::build(&core.samples, SystemTime::now());
    let report = lint::lint(&Input {
        mesh: &mesh,
        source: &source,
        cost: MemoryCost::MEASURED,
        observed: Some(&observed),
    });
    json!({
        "generation": generation,
        "findings": report.findings,
        "proxy_tax": report.proxy_tax,
    })
}
