//! A log as several files: a folder of part files (as Spark, Hive and most pipelines write a
//! log), a glob, or one file; and the share of such a log one of `n` readers takes.
//!
//! - **Parts.** A folder's parts are its files and those of its subfolders (Hive-style
//!   `date=2024-01-01/` partitions included), in order of their path below the folder, compared
//!   byte by byte; names starting with `.` or `_` (`_SUCCESS`, `.part-0.crc`) are not data and
//!   are left out. A glob (`logs/day-*.parquet`) matches files in the same order. All parts must
//!   have one format, told by their extension unless [`ReadOptions::format`] names it.
//! - **Shards.** Reader `rank` of `count` ([`Shard`]) takes a deterministic, balanced share, and
//!   the shares of `0..count` together are the log, each row exactly once: Parquet row groups
//!   are dealt round-robin over the log's row groups (numbered across parts in order); a CSV part
//!   is cut into `count` byte ranges of its data at line starts, and reader `rank` takes range
//!   `rank` of every part. A CSV cut assumes no line break inside a quoted field.

use std::path::{Path, PathBuf};

use super::{Format, ReadOptions};
use crate::error::{DataError, Result};

/// One reader's share of a log: `rank` of `count` readers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This reader's index, `0..count`.
    pub rank: usize,
    /// How many readers share the log (at least 1).
    pub count: usize,
}

impl Shard {
    /// Reader `rank` of `count`.
    ///
    /// # Panics
    /// If `count` is 0 or `rank >= count`.
    pub fn new(rank: usize, count: usize) -> Shard {
        assert!(
            count >= 1 && rank < count,
            "shard {rank} of {count}: need 0 <= rank < count"
        );
        Shard { rank, count }
    }

    /// The whole log (one reader).
    pub fn whole() -> Shard {
        Shard { rank: 0, count: 1 }
    }

    /// True for the one-reader shard.
    pub fn is_whole(&self) -> bool {
        self.count == 1
    }

    /// Whether the `index`-th unit (a Parquet row group, counted over the whole log) is this
    /// reader's.
    pub fn owns(&self, index: usize) -> bool {
        index % self.count == self.rank
    }
}

/// True when `path` holds glob characters (`*`, `?`, `[`).
fn is_glob(path: &Path) -> bool {
    path.to_str().is_some_and(|s| s.contains(['*', '?', '[']))
}

/// Whether a file name is data (not `_SUCCESS`, `.crc`, hidden files).
fn is_data_name(name: &std::ffi::OsStr) -> bool {
    let name = name.to_string_lossy();
    !(name.starts_with('.') || name.starts_with('_'))
}

/// The files of the log at `path` in reading order: the file itself; the data files of a
/// folder, recursively; or the files a glob matches. Errors name `path` when it holds no part,
/// when a part's format cannot be told, or when parts mix formats.
pub fn log_parts(path: &Path, opts: &ReadOptions) -> Result<Vec<PathBuf>> {
    let name = path.display().to_string();
    let mut parts = if path.is_dir() {
        let mut found = Vec::new();
        walk(path, path, &mut found)?;
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found.into_iter().map(|(_, p)| p).collect::<Vec<_>>()
    } else if !path.exists() && is_glob(path) {
        let pattern = path.to_string_lossy();
        let paths = glob::glob(&pattern)
            .map_err(|e| DataError::invalid(&name, format!("is not a valid glob: {e}")))?;
        let mut found = Vec::new();
        for p in paths {
            let p = p.map_err(|e| {
                let at = e.path().to_path_buf();
                DataError::io(at, e.into())
            })?;
            if p.is_file() && p.file_name().is_some_and(is_data_name) {
                found.push(p);
            }
        }
        found.sort();
        if found.is_empty() {
            return Err(DataError::invalid(&name, "matches no file"));
        }
        found
    } else {
        return Ok(vec![path.to_path_buf()]);
    };
    if parts.is_empty() {
        return Err(DataError::invalid(
            &name,
            "is a folder with no data file (names starting with `.` or `_` are not data)",
        ));
    }
    if opts.format.is_none() {
        let mut first: Option<(Format, &PathBuf)> = None;
        for p in &parts {
            let f = Format::from_path(p).ok_or_else(|| {
                DataError::invalid(
                    &p.display().to_string(),
                    "cannot tell the format of this part from its extension: name it .csv, \
                     .parquet or .pq, or set the format",
                )
            })?;
            match first {
                None => first = Some((f, p)),
                Some((f0, p0)) if f0 != f => {
                    return Err(DataError::invalid(
                        &name,
                        format!(
                            "mixes formats: {} is {f0:?} but {} is {f:?}",
                            p0.display(),
                            p.display()
                        ),
                    ))
                }
                Some(_) => {}
            }
        }
    }
    // A folder read twice must give the same order on every machine: sorted above.
    parts.dedup();
    Ok(parts)
}

/// Collects the data files below `dir` as (path relative to `root`, path).
fn walk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, PathBuf)>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        if !is_data_name(&entry.file_name()) {
            continue;
        }
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| DataError::io(&path, e))?;
        // Follow links to files and folders as a reader of the path would.
        let is_dir = kind.is_dir() || (kind.is_symlink() && path.is_dir());
        if is_dir {
            walk(root, &path, out)?;
        } else if path.is_file() {
            let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
            out.push((rel, path));
        }
    }
    Ok(())
}

/// The byte range `[start, end)` of a CSV part's data (everything after its header line) that
/// `shard` reads, cut at line starts, and how many line breaks precede `start` in the data.
///
/// `bytes` is the part's content from `data_start` (the first byte after the header line) on,
/// read lazily through `find_newline`: it returns the offset of the first `\n` at or after
/// `from`, or `None`.
pub(crate) fn csv_range(
    data_start: u64,
    len: u64,
    shard: Shard,
    mut find_newline: impl FnMut(u64) -> Result<Option<u64>>,
) -> Result<(u64, u64)> {
    let data = len.saturating_sub(data_start);
    // The first line start at or after `x`: x itself if the byte before it is a line break.
    let mut cut = |k: usize| -> Result<u64> {
        let x = data_start + (data as u128 * k as u128 / shard.count as u128) as u64;
        if x <= data_start {
            return Ok(data_start);
        }
        if x >= len {
            return Ok(len);
        }
        Ok(match find_newline(x - 1)? {
            Some(nl) => nl + 1,
            None => len,
        })
    };
    let start = cut(shard.rank)?;
    let end = cut(shard.rank + 1)?;
    Ok((start, end.max(start)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(text: &[u8], data_start: u64, count: usize) -> Vec<(u64, u64)> {
        (0..count)
            .map(|rank| {
                csv_range(
                    data_start,
                    text.len() as u64,
                    Shard::new(rank, count),
                    |from| {
                        Ok(memchr::memchr(b'\n', &text[from as usize..]).map(|i| from + i as u64))
                    },
                )
                .unwrap()
            })
            .collect()
    }

    #[test]
    fn csv_ranges_tile_the_data_at_line_starts() {
        let text = b"h\nabc\nd\nefghij\nk\nlmn\n";
        for count in 1..=9 {
            let r = ranges(text, 2, count);
            assert_eq!(r[0].0, 2);
            assert_eq!(r[count - 1].1, text.len() as u64);
            for w in r.windows(2) {
                assert_eq!(w[0].1, w[1].0, "ranges {r:?} must tile");
            }
            for &(s, e) in &r {
                assert!(
                    s == 2 || text[s as usize - 1] == b'\n',
                    "{s} is a line start"
                );
                assert!(s <= e);
            }
        }
    }

    #[test]
    fn a_last_line_without_a_break_is_kept() {
        let text = b"h\na\nbb\nccc";
        let r = ranges(text, 2, 4);
        let mut joined = Vec::new();
        for (s, e) in r {
            joined.extend_from_slice(&text[s as usize..e as usize]);
        }
        assert_eq!(joined, b"a\nbb\nccc");
    }

    #[test]
    fn shards_deal_units_round_robin() {
        let s = Shard::new(1, 3);
        let mine: Vec<usize> = (0..8).filter(|&i| s.owns(i)).collect();
        assert_eq!(mine, vec![1, 4, 7]);
        assert!(Shard::whole().is_whole());
    }

    #[test]
    #[should_panic]
    fn a_rank_beyond_the_count_panics() {
        Shard::new(3, 3);
    }
}
