//! [`StrColumn`]: a column of strings stored back to back in one buffer.
//!
//! A log of a few hundred thousand rows holds millions of ids and tags; one `String` each
//! costs an allocation, a free and 24 bytes of header per value, and scatters the values over
//! the heap. A `StrColumn` keeps every value in one `String` and the end of each value in one
//! `Vec<usize>` (as Arrow keeps a string array), so reading a column allocates two buffers and
//! dropping it frees two.

use std::fmt;
use std::ops::{Index, Range};

/// A column of strings held in one byte buffer plus the end offset of each value.
///
/// Value `i` is `buffer[ends[i - 1]..ends[i]]` (from 0 for the first). Values may be empty
/// and may hold any text; equality compares the sequences of values.
///
/// ```
/// use dmtl_data::StrColumn;
/// let mut c: StrColumn = ["u1", "", "ü"].into_iter().collect();
/// c.push("u2");
/// assert_eq!(c.len(), 4);
/// assert_eq!(&c[2], "ü");
/// assert_eq!(c.iter().collect::<Vec<_>>(), ["u1", "", "ü", "u2"]);
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct StrColumn {
    /// Every value, back to back.
    bytes: String,
    /// The end of each value in `bytes`, non-decreasing, each on a char boundary.
    ends: Vec<usize>,
}

impl StrColumn {
    /// An empty column (allocates nothing).
    pub const fn new() -> StrColumn {
        StrColumn {
            bytes: String::new(),
            ends: Vec::new(),
        }
    }

    /// An empty column with room for `values` values totalling `bytes` bytes.
    pub fn with_capacity(values: usize, bytes: usize) -> StrColumn {
        StrColumn {
            bytes: String::with_capacity(bytes),
            ends: Vec::with_capacity(values),
        }
    }

    /// Makes room for `values` more values totalling `bytes` more bytes.
    pub fn reserve(&mut self, values: usize, bytes: usize) {
        self.bytes.reserve(bytes);
        self.ends.reserve(values);
    }

    /// Appends one value.
    #[inline]
    pub fn push(&mut self, value: &str) {
        self.bytes.push_str(value);
        self.ends.push(self.bytes.len());
    }

    /// The number of values.
    #[inline]
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when the column holds no value.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The total length in bytes of all values.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// Every value concatenated, in order.
    pub fn as_str(&self) -> &str {
        &self.bytes
    }

    /// The end offset of each value in [`StrColumn::as_str`] (the first value starts at 0).
    pub fn ends(&self) -> &[usize] {
        &self.ends
    }

    #[inline]
    fn start(&self, i: usize) -> usize {
        if i == 0 {
            0
        } else {
            self.ends[i - 1]
        }
    }

    /// Value `i`, or `None` when `i >= len()`.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&str> {
        let end = *self.ends.get(i)?;
        Some(&self.bytes[self.start(i)..end])
    }

    /// The values in order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            bytes: &self.bytes,
            ends: &self.ends,
            start: 0,
        }
    }

    /// The values of rows `range`, in order, without copying.
    ///
    /// # Panics
    /// When the range is out of bounds or decreasing.
    pub fn range(&self, range: Range<usize>) -> Iter<'_> {
        let start = self.start(range.start);
        Iter {
            bytes: &self.bytes,
            ends: &self.ends[range],
            start,
        }
    }

    /// The values of rows `range` as a new column.
    ///
    /// # Panics
    /// When the range is out of bounds or decreasing.
    pub fn slice(&self, range: Range<usize>) -> StrColumn {
        let start = self.start(range.start);
        let ends = &self.ends[range];
        let end = ends.last().copied().unwrap_or(start);
        StrColumn {
            bytes: self.bytes[start..end].to_string(),
            ends: ends.iter().map(|&e| e - start).collect(),
        }
    }

    /// The values `rows`, in that order (a row may repeat), as a new column.
    ///
    /// # Panics
    /// When a row is out of range.
    pub fn take(&self, rows: &[usize]) -> StrColumn {
        let spans: Vec<(usize, usize)> = rows
            .iter()
            .map(|&r| (self.start(r), self.ends[r]))
            .collect();
        let mut out = StrColumn::with_capacity(rows.len(), spans.iter().map(|&(s, e)| e - s).sum());
        for (s, e) in spans {
            out.push(&self.bytes[s..e]);
        }
        out
    }

    /// Appends a copy of every value of `other` after this column's values.
    pub fn append(&mut self, other: &StrColumn) {
        let base = self.bytes.len();
        self.bytes.push_str(&other.bytes);
        self.ends.extend(other.ends.iter().map(|&e| e + base));
    }

    /// Removes every value, keeping the allocated room.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }

    /// Keeps the first `len` values (no effect when the column is shorter).
    pub fn truncate(&mut self, len: usize) {
        if len < self.ends.len() {
            let end = self.start(len);
            self.ends.truncate(len);
            self.bytes.truncate(end);
        }
    }

    /// True when some value equals `value` (a linear scan).
    pub fn contains(&self, value: &str) -> bool {
        self.iter().any(|s| s == value)
    }

    /// The values as owned strings.
    pub fn to_vec(&self) -> Vec<String> {
        self.iter().map(str::to_string).collect()
    }
}

impl Index<usize> for StrColumn {
    type Output = str;

    /// Value `i`.
    ///
    /// # Panics
    /// When `i >= len()`.
    #[inline]
    fn index(&self, i: usize) -> &str {
        match self.get(i) {
            Some(s) => s,
            None => panic!(
                "index {i} out of range for a column of {} strings",
                self.len()
            ),
        }
    }
}

impl fmt::Debug for StrColumn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<S: AsRef<str>> FromIterator<S> for StrColumn {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> StrColumn {
        let mut c = StrColumn::new();
        c.extend(iter);
        c
    }
}

impl<S: AsRef<str>> Extend<S> for StrColumn {
    fn extend<I: IntoIterator<Item = S>>(&mut self, iter: I) {
        let iter = iter.into_iter();
        self.ends.reserve(iter.size_hint().0);
        for s in iter {
            self.push(s.as_ref());
        }
    }
}

impl<S: AsRef<str>> From<Vec<S>> for StrColumn {
    fn from(v: Vec<S>) -> StrColumn {
        StrColumn::from(v.as_slice())
    }
}

impl<S: AsRef<str>> From<&[S]> for StrColumn {
    fn from(v: &[S]) -> StrColumn {
        let bytes = v.iter().map(|s| s.as_ref().len()).sum();
        let mut c = StrColumn::with_capacity(v.len(), bytes);
        c.extend(v);
        c
    }
}

impl From<StrColumn> for Vec<String> {
    fn from(c: StrColumn) -> Vec<String> {
        c.to_vec()
    }
}

impl<'a> IntoIterator for &'a StrColumn {
    type Item = &'a str;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl<S: AsRef<str>> PartialEq<[S]> for StrColumn {
    fn eq(&self, other: &[S]) -> bool {
        self.len() == other.len() && self.iter().zip(other).all(|(a, b)| a == b.as_ref())
    }
}

impl<S: AsRef<str>> PartialEq<Vec<S>> for StrColumn {
    fn eq(&self, other: &Vec<S>) -> bool {
        *self == other[..]
    }
}

/// The values of a [`StrColumn`] (or of a range of its rows), in order.
#[derive(Clone)]
pub struct Iter<'a> {
    bytes: &'a str,
    /// Ends of the values not yet returned.
    ends: &'a [usize],
    /// Start of the first value not yet returned.
    start: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a str;

    #[inline]
    fn next(&mut self) -> Option<&'a str> {
        let (&end, rest) = self.ends.split_first()?;
        let s = &self.bytes[self.start..end];
        self.start = end;
        self.ends = rest;
        Some(s)
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.ends.len(), Some(self.ends.len()))
    }

    fn count(self) -> usize {
        self.ends.len()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    #[inline]
    fn next_back(&mut self) -> Option<Self::Item> {
        let (&end, rest) = self.ends.split_last()?;
        let start = rest.last().copied().unwrap_or(self.start);
        self.ends = rest;
        Some(&self.bytes[start..end])
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl std::iter::FusedIterator for Iter<'_> {}

impl fmt::Debug for Iter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.clone()).finish()
    }
}
