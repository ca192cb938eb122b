//! Why a search could not run.

/// Why a search could not run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RetrievalError {
    /// Queries and items have vectors of different lengths.
    #[error("dimension mismatch: queries have {queries} columns but items have {items}")]
    DimensionMismatch {
        /// Columns of the query matrix.
        queries: usize,
        /// Columns of the item matrix.
        items: usize,
    },
    /// `k` was 0.
    #[error("k must be at least 1")]
    ZeroK,
    /// The item matrix has more rows than a `u32` index can name.
    #[error("{0} items: item indices must fit in u32 (at most 4294967294 items)")]
    TooManyItems(usize),
    /// The exclusion lists do not pair up with the queries.
    #[error("{lists} exclusion lists given for {queries} queries")]
    ExcludeCount {
        /// Number of lists.
        lists: usize,
        /// Number of queries.
        queries: usize,
    },
    /// An exclusion list names an item that does not exist.
    #[error("exclusion list of query {query} names item {item}, but there are {n_items} items")]
    ExcludeOutOfRange {
        /// Query (row) whose list is wrong.
        query: usize,
        /// The item index.
        item: u32,
        /// Number of items.
        n_items: usize,
    },
    /// The raw ids of an [`ExactIndex`] do not pair up with its rows.
    #[error("{ids} raw ids given for {items} item rows")]
    IdCount {
        /// Number of ids.
        ids: usize,
        /// Number of item rows.
        items: usize,
    },
    /// A search option is out of range.
    #[error("invalid search option: {0}")]
    BadOption(&'static str),
}
