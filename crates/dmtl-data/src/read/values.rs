//! Parsing of single cells, shared by the CSV reader and the string columns of Parquet files.

/// What a valid click looks like.
pub(crate) const EXPECT_CLICK: &str = "a click of 0 or 1";
/// What a valid duration looks like.
pub(crate) const EXPECT_DURATION: &str = "a duration in seconds (a finite number >= 0)";
/// What a valid dense value looks like.
pub(crate) const EXPECT_DENSE: &str = "a finite number";
/// What a valid time looks like.
pub(crate) const EXPECT_TIME: &str = "an integer time";
/// What a valid user or item id in a Parquet file looks like.
pub(crate) const EXPECT_ID: &str = "a user or item id (not null)";
/// What valid text looks like.
pub(crate) const EXPECT_TEXT: &str = "UTF-8 text";

/// The value as shown in an error: quoted, shortened when long.
pub(crate) fn show(s: &str) -> String {
    const MAX: usize = 40;
    if s.chars().count() > MAX {
        let head: String = s.chars().take(MAX).collect();
        format!("{head:?}...")
    } else if s.is_empty() {
        "an empty cell".to_string()
    } else {
        format!("{s:?}")
    }
}

/// Bytes as shown in an error.
pub(crate) fn show_bytes(b: &[u8]) -> String {
    show(&String::from_utf8_lossy(b))
}

pub(crate) fn parse_click(s: &str) -> Option<f32> {
    match s.trim() {
        "0" => Some(0.0),
        "1" => Some(1.0),
        t => t
            .parse::<f64>()
            .ok()
            .filter(|&v| v == 0.0 || v == 1.0)
            .map(|v| v as f32),
    }
}

pub(crate) fn parse_duration(s: &str) -> Option<f32> {
    match s.trim().parse::<f32>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Some(v),
        _ => None,
    }
}

pub(crate) fn parse_dense(s: &str) -> Option<f32> {
    match s.trim().parse::<f32>() {
        Ok(v) if v.is_finite() => Some(v),
        _ => None,
    }
}

pub(crate) fn parse_time(s: &str) -> Option<i64> {
    s.trim().parse::<i64>().ok()
}

/// Splits a multi-hot cell into its tokens; empty tokens (an empty cell, `a||b`) are dropped.
pub(crate) fn split_bag<'a>(s: &'a str, sep: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    s.split(sep).filter(|t| !t.is_empty())
}
