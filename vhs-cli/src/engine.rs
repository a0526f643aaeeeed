//! `--engine` and the Athena settings of `vhs gc` and `vhs verify`.

use clap::{Args, ValueEnum};
use vhs::maintenance::{AthenaOptions, Engine};
use vhs::Error;

/// How candidates are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EngineName {
    /// Scan and list in this process, the references in memory.
    InProcess,
    /// References and listing written to S3, joined by Athena.
    Athena,
}

/// `--engine` and `--athena-*`, for `vhs gc` and `vhs verify`.
#[derive(Debug, Args)]
pub struct EngineArgs {
    /// How candidates are found: in this process (the referenced keys in
    /// memory, ~32 MiB per million pointers), or by Athena over files vhs
    /// writes to --athena-output (memory bounded by a page; see the README,
    /// "GC and verify on Athena").
    #[arg(long, value_enum, default_value = "in-process")]
    pub engine: EngineName,
    /// With --engine athena: s3://bucket/prefix/ for the run's files and
    /// Athena's results (removed afterwards). Not under the table's objects.
    #[arg(long, value_name = "S3_URI", required_if_eq("engine", "athena"))]
    pub athena_output: Option<String>,
    /// With --engine athena: the Glue database the run's tables are created
    /// in (they are dropped afterwards).
    #[arg(long, value_name = "NAME", default_value = "default")]
    pub athena_database: String,
    /// With --engine athena: the Athena workgroup (default: primary).
    #[arg(long, value_name = "NAME")]
    pub athena_workgroup: Option<String>,
    /// With --engine athena (gc only): read the references from an existing
    /// DynamoDB export, s3://bucket/prefix/AWSDynamoDB/ID/ (format
    /// DYNAMODB_JSON), not from files of vhs's scan; the grace period counts
    /// from the export's time. See the README, "GC and verify on Athena".
    #[arg(long, value_name = "S3_URI")]
    pub from_export: Option<String>,
}

impl EngineArgs {
    /// The engine the arguments name; refuses --from-export without
    /// --engine athena.
    pub fn engine(&self) -> Result<Engine, Error> {
        match (self.engine, &self.athena_output) {
            (EngineName::Athena, Some(output)) => {
                let mut options = AthenaOptions::new(output).database(&self.athena_database);
                if let Some(w) = &self.athena_workgroup {
                    options = options.workgroup(w);
                }
                if let Some(uri) = &self.from_export {
                    options = options.from_export(uri);
                }
                Ok(Engine::Athena(options))
            }
            _ if self.from_export.is_some() => Err(Error::InvalidInput {
                message: "--from-export reads a DynamoDB export with Athena: add --engine athena \
                          and --athena-output s3://bucket/prefix/"
                    .to_owned(),
            }),
            // clap requires --athena-output with --engine athena.
            _ => Ok(Engine::InProcess),
        }
    }
}
