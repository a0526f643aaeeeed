//! SQL queries run by a query service (Amazon Athena) over files in S3: what
//! GC and verify's Athena engine ([`crate::maintenance::Engine::Athena`]) sends.

/// A query to start (Athena's StartQueryExecution).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryStart {
    /// The SQL statement (one per query).
    pub sql: String,
    /// The database (Glue Data Catalog) unqualified table names resolve in.
    pub database: String,
    /// The workgroup; `None`: the service's default (`primary`).
    pub workgroup: Option<String>,
    /// Where the service writes results, an `s3://bucket/prefix/` URI;
    /// `None`: the workgroup's configured location.
    pub output: Option<String>,
}

/// Where a query is (Athena's `QueryExecutionState`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueryState {
    /// Queued or running: ask again.
    Running,
    /// Done: its rows can be read.
    Succeeded,
    /// Failed or cancelled, with the service's reason.
    Failed(String),
}

/// A query's status (Athena's GetQueryExecution).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryStatus {
    /// Where the query is.
    pub state: QueryState,
    /// Bytes the query read (what Athena bills), once known.
    pub scanned_bytes: u64,
}

/// One page of a succeeded query's rows (Athena's GetQueryResults).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryRows {
    /// The rows, each column as text (`None` for SQL NULL). The first page of
    /// a `SELECT` starts with the header row (the column names), as Athena
    /// sends it.
    pub rows: Vec<Vec<Option<String>>>,
    /// The token of the next page; `None` on the last.
    pub next: Option<String>,
}
