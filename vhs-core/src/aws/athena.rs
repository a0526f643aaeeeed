//! Athena: SQL queries over files in S3 (GC and verify's Athena engine).

use aws_sdk_athena::types::{QueryExecutionContext, QueryExecutionState, ResultConfiguration};

use super::*;
use crate::backend::{QueryCalls, QueryRows, QueryStart, QueryState, QueryStatus};

impl AwsBackend {
    /// Maps an SDK error of an Athena call.
    fn athena_error<E>(
        &self,
        operation: &'static str,
        err: SdkError<E, s3::config::http::HttpResponse>,
    ) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        classify("athena", operation, None, err)
    }
}

#[async_trait]
impl QueryCalls for AwsBackend {
    async fn start_query_execution(&self, request: &QueryStart) -> Result<String> {
        const OP: &str = Op::StartQueryExecution.name();
        let out = self
            .athena
            .start_query_execution()
            .query_string(&request.sql)
            .query_execution_context(
                QueryExecutionContext::builder()
                    .database(&request.database)
                    .build(),
            )
            .set_work_group(request.workgroup.clone())
            .set_result_configuration(
                request
                    .output
                    .as_ref()
                    .map(|o| ResultConfiguration::builder().output_location(o).build()),
            )
            .send()
            .await
            .map_err(|e| self.athena_error(OP, e))?;
        out.query_execution_id()
            .map(str::to_owned)
            .ok_or_else(|| Error::Backend {
                service: "athena",
                operation: OP,
                code: None,
                retryable: false,
                message: "the answer names no query execution id".into(),
                source: None,
            })
    }

    async fn get_query_execution(&self, id: &str) -> Result<QueryStatus> {
        const OP: &str = Op::GetQueryExecution.name();
        let out = self
            .athena
            .get_query_execution()
            .query_execution_id(id)
            .send()
            .await
            .map_err(|e| self.athena_error(OP, e))?;
        let execution = out.query_execution();
        let status = execution.and_then(|e| e.status());
        let reason = || {
            status
                .and_then(|s| s.state_change_reason())
                .map(|r| r.split_whitespace().collect::<Vec<_>>().join(" "))
                .unwrap_or_else(|| "no reason given".to_owned())
        };
        let state = match status.and_then(|s| s.state()) {
            Some(QueryExecutionState::Succeeded) => QueryState::Succeeded,
            Some(QueryExecutionState::Failed) => QueryState::Failed(reason()),
            Some(QueryExecutionState::Cancelled) => {
                QueryState::Failed(format!("cancelled: {}", reason()))
            }
            _ => QueryState::Running,
        };
        let scanned_bytes = execution
            .and_then(|e| e.statistics())
            .and_then(|s| s.data_scanned_in_bytes())
            .map_or(0, |b| b.max(0) as u64);
        Ok(QueryStatus {
            state,
            scanned_bytes,
        })
    }

    async fn get_query_results(&self, id: &str, next: Option<String>) -> Result<QueryRows> {
        const OP: &str = Op::GetQueryResults.name();
        let out = self
            .athena
            .get_query_results()
            .query_execution_id(id)
            .set_next_token(next)
            .max_results(1000)
            .send()
            .await
            .map_err(|e| self.athena_error(OP, e))?;
        let rows = out
            .result_set()
            .map(|set| {
                set.rows()
                    .iter()
                    .map(|row| {
                        row.data()
                            .iter()
                            .map(|d| d.var_char_value().map(str::to_owned))
                            .collect()
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(QueryRows {
            rows,
            next: out.next_token().map(str::to_owned),
        })
    }
}
