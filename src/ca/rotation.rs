//! Root rotation steps. Two kinds share the same three phases:
//!
//! - `trellis ca rotate` on the self-signed CA: a new root is generated and
//!   each step is persisted (`selfsigned`), so a restart resumes;
//! - a supplied CA ([`Ca::begin_rotation_to`]): an operator's new CA files
//!   (also the move from the self-signed CA to a plug-in CA). This rotation is
//!   held in memory; after `finish`, start `serve` with the new files.
//!
//! Phases: begin (new roots trusted, old signer signs) → activate (new signer
//! signs, both trusted) → finish (old roots dropped). `serve` waits for every
//! proxy to ACK between steps, so no peer ever sees a chain it cannot verify.

use super::{plugin, selfsigned, Ca, CaError, PluginCa, RotationPhase, State};

impl Ca {
    /// Step 1: generate a new self-signed root and trust it; the old root still signs.
    pub fn begin_rotation(&self) -> Result<(), CaError> {
        self.step("begin a rotation", RotationPhase::Idle, |s| {
            let dir = s.dir.as_deref().ok_or(CaError::PluginManaged)?;
            selfsigned::begin(dir, s)
        })
    }

    /// Step 1 towards a supplied CA (Istio plug-in CA files): its roots join
    /// the trust bundle; the current CA still signs. The files are checked
    /// as at start-up.
    pub fn begin_rotation_to(&self, files: &PluginCa) -> Result<(), CaError> {
        let next = plugin::load(files)?;
        self.step("begin a rotation", RotationPhase::Idle, move |s| {
            Ok(supplied_begin(s, next))
        })
    }

    /// Step 2: the new root (or supplied CA) signs new leaves; both are trusted.
    pub fn activate_new_root(&self) -> Result<(), CaError> {
        self.step(
            "activate the new root",
            RotationPhase::NewRootTrusted,
            |s| match &s.next {
                Some(next) => Ok(supplied_activate(s, next)),
                None => selfsigned::activate(self_signed_dir(s)?, s),
            },
        )
    }

    /// Step 3: drop the old roots from the bundle (and the old self-signed key).
    pub fn finish_rotation(&self) -> Result<(), CaError> {
        self.step(
            "finish the rotation",
            RotationPhase::NewRootActive,
            |s| match &s.next {
                Some(next) => Ok((**next).clone()),
                None => selfsigned::finish(self_signed_dir(s)?, s),
            },
        )
    }

    fn step(
        &self,
        step: &'static str,
        expected: RotationPhase,
        apply: impl FnOnce(&State) -> Result<State, CaError>,
    ) -> Result<(), CaError> {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        if state.phase != expected {
            return Err(CaError::WrongPhase {
                step,
                phase: state.phase,
            });
        }
        *state = apply(&state)?;
        Ok(())
    }
}

fn self_signed_dir(state: &State) -> Result<&std::path::Path, CaError> {
    state.dir.as_deref().ok_or(CaError::PluginManaged)
}

/// Trust the union (without repeating a root both CAs share); keep signing.
fn supplied_begin(current: &State, next: State) -> State {
    let mut roots = current.roots.clone();
    for root in &next.roots {
        let known = roots
            .iter()
            .any(|r| r.info.fingerprint_sha256 == root.info.fingerprint_sha256);
        if !known {
            roots.push(root.clone());
        }
    }
    State {
        dir: current.dir.clone(),
        roots,
        signer: current.signer.clone(),
        phase: RotationPhase::NewRootTrusted,
        next: Some(Box::new(next)),
    }
}

fn supplied_activate(current: &State, next: &State) -> State {
    let mut roots = current.roots.clone();
    for root in &mut roots {
        // The supplied CA's own certificate signs, not any root.
        root.info.signing = false;
    }
    State {
        dir: current.dir.clone(),
        roots,
        signer: next.signer.clone(),
        phase: RotationPhase::NewRootActive,
        next: Some(Box::new(next.clone())),
    }
}
