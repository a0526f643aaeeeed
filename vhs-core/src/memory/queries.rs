//! No query service in memory: GC and verify's Athena engine is refused.

use super::*;
use crate::backend::{QueryCalls, QueryRows, QueryStart, QueryStatus};

/// Why every query call fails on [`MemoryBackend`].
fn no_sql_engine(op: Op) -> Error {
    Error::Backend {
        service: op.service().name(),
        operation: op.name(),
        code: Some("Unsupported".into()),
        retryable: false,
        message: "MemoryBackend has no SQL engine: run gc and verify with the in-process engine"
            .into(),
        source: None,
    }
}

#[async_trait]
impl QueryCalls for MemoryBackend {
    async fn start_query_execution(&self, _request: &QueryStart) -> Result<String> {
        Err(no_sql_engine(Op::StartQueryExecution))
    }

    async fn get_query_execution(&self, _id: &str) -> Result<QueryStatus> {
        Err(no_sql_engine(Op::GetQueryExecution))
    }

    async fn get_query_results(&self, _id: &str, _next: Option<String>) -> Result<QueryRows> {
        Err(no_sql_engine(Op::GetQueryResults))
    }
}
