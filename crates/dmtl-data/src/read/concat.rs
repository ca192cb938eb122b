//! Joining the pieces of a log read in chunks into one [`RawLog`], each column built once at
//! its final size.

use rayon::prelude::*;

use crate::raw::{RawColumn, RawLog, StrColumn};
use crate::schema::Kind;

/// Joins logs of the same columns (pieces of one file), in order: each column is built once at
/// its final size, columns in parallel.
pub(super) fn concat(mut parts: Vec<RawLog>) -> RawLog {
    if parts.len() <= 1 {
        return parts.pop().unwrap_or_default();
    }
    let n_rows = parts.iter().map(|p| p.n_rows).sum();
    let source = parts[0].source.clone();
    let names: Vec<String> = parts[0].columns.iter().map(|(n, _)| n.clone()).collect();
    let mut by_column: Vec<Vec<RawColumn>> = names.iter().map(|_| Vec::new()).collect();
    let (mut click, mut duration, mut time) = (Vec::new(), Vec::new(), Vec::new());
    for p in parts {
        for (j, (_, c)) in p.columns.into_iter().enumerate() {
            by_column[j].push(c);
        }
        click.push(p.click);
        duration.push(p.duration);
        time.push(p.time);
    }
    fn join<T>(parts: Vec<Option<Vec<T>>>) -> Option<Vec<T>> {
        let mut out: Option<Vec<T>> = None;
        let total = parts.iter().flatten().map(Vec::len).sum();
        for v in parts.into_iter().flatten() {
            out.get_or_insert_with(|| Vec::with_capacity(total))
                .extend(v);
        }
        out
    }
    // The joined columns are allocated here and filled in parallel (see `csv_reader` on why
    // large buffers are not allocated on the workers).
    let joined: Vec<RawColumn> = by_column.iter().map(|c| room_for(c)).collect();
    let columns: Vec<(String, RawColumn)> = names
        .into_par_iter()
        .zip(joined)
        .zip(by_column)
        .map(|((name, mut out), cols)| {
            for c in cols {
                out.append(c);
            }
            (name, out)
        })
        .collect();
    RawLog {
        source,
        columns,
        click: join(click),
        duration: join(duration),
        time: join(time),
        n_rows,
    }
}

/// An empty column with room for the rows of `cols` (all of one kind).
fn room_for(cols: &[RawColumn]) -> RawColumn {
    let rows = cols.iter().map(RawColumn::len).sum();
    // (values, bytes) of the string columns.
    let strings = |f: fn(&RawColumn) -> Option<&StrColumn>| {
        cols.iter()
            .filter_map(f)
            .fold((0, 0), |(n, b), s| (n + s.len(), b + s.byte_len()))
    };
    match cols[0].kind() {
        Kind::Categorical => {
            let (n, bytes) = strings(|c| match c {
                RawColumn::Categorical(v) => Some(v),
                _ => None,
            });
            RawColumn::Categorical(StrColumn::with_capacity(n, bytes))
        }
        Kind::Dense => RawColumn::Dense(Vec::with_capacity(rows)),
        Kind::MultiHot => {
            let (n_tokens, bytes) = strings(|c| match c {
                RawColumn::MultiHot { tokens, .. } => Some(tokens),
                _ => None,
            });
            let mut offsets = Vec::with_capacity(rows + 1);
            offsets.push(0);
            RawColumn::MultiHot {
                tokens: StrColumn::with_capacity(n_tokens, bytes),
                offsets,
            }
        }
    }
}
