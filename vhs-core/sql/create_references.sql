-- Every object key a live item (one without a placeholder) references: each
-- top-level String attribute whose value starts with s3://{bucket}/, the key
-- after it, escaped; one per line. vhs computes it while it scans the table,
-- with the rule the in-process engine uses.
CREATE EXTERNAL TABLE {table} (
  key string
)
ROW FORMAT DELIMITED FIELDS TERMINATED BY '\t'
LOCATION '{location}'
