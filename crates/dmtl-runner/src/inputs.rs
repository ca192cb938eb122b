//! The identity of a run's input files: size, modification time and an xxHash64 of the bytes,
//! recorded in `<run>/inputs.json` when `dmtl train` starts and checked by `dmtl train
//! --resume`, which refuses to continue over data that changed (a resumed run skips the batches
//! already trained, so other rows would silently mix two data sets in one model).

use std::hash::Hasher;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::config::RunConfig;
use crate::fsutil::write_text;
use crate::layout::INPUTS_FILE;

/// What identifies one input file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputIdentity {
    /// The configuration key that names the file (`data.log`).
    pub key: String,
    /// The file, as the configuration names it.
    pub path: PathBuf,
    /// Bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch (informative: a copy with the same
    /// bytes is the same data).
    pub modified_ns: Option<u64>,
    /// xxHash64 (seed 0) of the whole file, in hex.
    pub xxh64: String,
}

/// The identity of the input `path`, named by `key`: a file, or a log given as a folder of part
/// files or a glob, identified by its parts in reading order (total bytes; one hash over each
/// part's path below `path` and its bytes; the latest modification time).
pub fn identify(key: &str, path: &Path) -> Result<InputIdentity> {
    let parts = if path.is_dir() || crate::paths::is_glob(path) {
        crate::paths::log_files(path)
    } else {
        vec![path.to_path_buf()]
    };
    let several = parts.len() > 1 || parts.first().is_some_and(|p| p != path);
    let mut h = twox_hash::XxHash64::with_seed(0);
    let (mut size, mut modified_ns) = (0u64, None);
    let mut buf = vec![0u8; 1 << 20];
    for part in &parts {
        let ctx = || format!("`{key}`: reading {}", part.display());
        let mut f = std::fs::File::open(part).with_context(ctx)?;
        let meta = f.metadata().with_context(ctx)?;
        if several {
            // The part's name is part of the data: renaming parts reorders the log.
            let name = part.strip_prefix(path).unwrap_or(part);
            h.write(name.to_string_lossy().as_bytes());
            h.write(&[0]);
        }
        loop {
            let n = f.read(&mut buf).with_context(ctx)?;
            if n == 0 {
                break;
            }
            h.write(&buf[..n]);
        }
        size += meta.len();
        let m = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos() as u64);
        modified_ns = modified_ns.max(m);
    }
    Ok(InputIdentity {
        key: key.to_string(),
        path: path.to_path_buf(),
        size,
        modified_ns,
        xxh64: format!("{:016x}", h.finish()),
    })
}

/// Every file `cfg` reads, with its key (`data.schema`, `data.log`, `data.test_log`,
/// `data.items`); none for simulated data.
pub fn input_files(cfg: &RunConfig) -> Vec<(&'static str, &Path)> {
    let Some(d) = &cfg.data else {
        return Vec::new();
    };
    [
        ("data.schema", Some(&d.schema)),
        ("data.log", Some(&d.log)),
        ("data.test_log", d.test_log.as_ref()),
        ("data.items", d.items.as_ref()),
    ]
    .into_iter()
    .filter_map(|(k, p)| p.map(|p| (k, p.as_path())))
    .collect()
}

/// The identities of every file `cfg` reads ([`input_files`]).
pub fn of_config(cfg: &RunConfig) -> Result<Vec<InputIdentity>> {
    input_files(cfg)
        .into_iter()
        .map(|(k, p)| identify(k, p))
        .collect()
}

/// Writes the identities of `cfg`'s inputs into the run folder `dir` (atomically).
pub fn record(cfg: &RunConfig, dir: &Path) -> Result<()> {
    let ids = of_config(cfg)?;
    write_text(&dir.join(INPUTS_FILE), &serde_json::to_string_pretty(&ids)?)
}

/// Checks, before a resume, that every input of the run folder `dir` (configuration `cfg`) has
/// the size and bytes recorded when the run started; fails naming the key and the file that
/// changed. A run without `inputs.json` (written by an older version) is not checked.
pub fn check(cfg: &RunConfig, dir: &Path) -> Result<()> {
    let path = dir.join(INPUTS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!("{}: no record of the inputs; not checked", path.display());
            return Ok(());
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let recorded: Vec<InputIdentity> =
        serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
    for was in &recorded {
        if !was.path.exists() && !crate::paths::is_glob(&was.path) {
            bail!(
                "`{}`: {} is gone since the run started ({} records it); a resumed run must \
                 read the same data: restore the file, or start a new run",
                was.key,
                was.path.display(),
                path.display()
            );
        }
        let now = identify(&was.key, &was.path)?;
        if now.size != was.size || now.xxh64 != was.xxh64 {
            bail!(
                "`{}`: {} changed since the run started ({} bytes with xxh64 {}, now {} bytes \
                 with xxh64 {}); a resumed run must read the same data: restore the file, or \
                 start a new run",
                was.key,
                was.path.display(),
                was.size,
                was.xxh64,
                now.size,
                now.xxh64
            );
        }
        if now.modified_ns != was.modified_ns {
            info!(file = %was.path.display(), "modified since the run started, same bytes");
        }
    }
    if let Some((k, _)) = input_files(cfg)
        .into_iter()
        .find(|(k, _)| !recorded.iter().any(|r| r.key == *k))
    {
        bail!(
            "`{k}`: the run's configuration names an input that {} does not record",
            path.display()
        );
    }
    Ok(())
}
