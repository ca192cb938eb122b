//! Paths as the file system will resolve them, and a folder's parent for naming siblings.

use std::path::{Component, Path, PathBuf};

/// `dir`'s parent, `.` for a bare name, so that siblings can be named.
pub fn parent_of(dir: &Path) -> &Path {
    match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// `path` made absolute, its longest existing prefix resolved by the file system (symlinks,
/// `.` and `..`) and the rest appended with `.` and `..` applied by name: the file that
/// creating the missing folders and then `path` would reach.
pub fn resolve(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let parts: Vec<Component> = abs.components().collect();
    for i in (1..=parts.len()).rev() {
        let prefix: PathBuf = parts[..i].iter().collect();
        if let Ok(mut base) = prefix.canonicalize() {
            for c in &parts[i..] {
                match c {
                    Component::ParentDir => {
                        base.pop();
                    }
                    Component::CurDir => {}
                    c => base.push(c),
                }
            }
            return base;
        }
    }
    abs
}

/// True when `path` holds glob characters (`*`, `?`, `[`) and names nothing itself: a log
/// given as a pattern of part files.
pub fn is_glob(path: &Path) -> bool {
    !path.exists() && path.to_str().is_some_and(|s| s.contains(['*', '?', '[']))
}

/// The files a log path stands for: the file itself, or the parts of a folder or glob
/// ([`dmtl_data::log_parts`]); just `path` when it cannot be listed (the reader reports why).
pub fn log_files(path: &Path) -> Vec<PathBuf> {
    dmtl_data::log_parts(path, &Default::default()).unwrap_or_else(|_| vec![path.to_path_buf()])
}
