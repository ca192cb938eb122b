//! Whether a pipeline keeps training states (`<run>/state/<stage>/`), and where a stage's
//! state stands when a run is resumed.

use std::path::Path;

use dmtl_teacher::train::state::StateDir;
use tracing::info;

use crate::layout::state_dir;

/// Whether and how a pipeline keeps training states under `<run>/state/<stage>/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum States {
    /// No states (`dmtl demo`).
    Off,
    /// A new run: states are written from scratch, so that a stopped run can be resumed.
    Fresh,
    /// Continue the run in its own folder: its configuration, schema, vocabularies and corpus
    /// tables are reused (not rewritten), and every stage continues from its state (a stage
    /// whose state says it is done is loaded from it, not retrained).
    Resume,
}

impl States {
    /// The state directory of `stage` in the run folder `dir`, if states are kept; on resume,
    /// logs where the stage's state stands (`RUST_LOG=info`).
    pub fn dir(self, dir: &Path, stage: &str, epochs: usize) -> Option<StateDir> {
        let d = state_dir(dir, stage);
        match self {
            States::Off => None,
            States::Fresh => Some(StateDir::fresh(d)),
            States::Resume => {
                info!("{stage}: {}", describe_state(&d, epochs));
                Some(StateDir::resume(d))
            }
        }
    }
}

/// Where the training state in `dir` stands, in words, from its manifest's `position` (the
/// library checks the state itself when it loads it).
fn describe_state(dir: &Path, epochs: usize) -> String {
    let path = dir.join(dmtl_teacher::train::state::MANIFEST);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return "no training state, starting afresh".into();
    };
    let pos = toml::from_str::<toml::Table>(&text)
        .ok()
        .and_then(|t| t.get("position").and_then(|p| p.as_table()).cloned());
    let Some(pos) = pos else {
        return format!("{}: unreadable training state", path.display());
    };
    let int = |k: &str| pos.get(k).and_then(|v| v.as_integer()).unwrap_or(0);
    let early = pos
        .get("stopped_early")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    if early || int("epoch") as usize >= epochs {
        return "the training state says it is done: loaded from it, not retrained".into();
    }
    format!(
        "resuming from the training state at epoch {}, batch {}",
        int("epoch") + 1,
        int("batch")
    )
}
