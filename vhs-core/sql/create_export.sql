-- The items of a DynamoDB table export (ExportTableToPointInTime, format
-- DYNAMODB_JSON): the gzip'd JSON lines under the export's data/, one
-- {"Item":{"attr":{"S":"..."},...}} per line, read as one text column.
-- The files hold no Ctrl-A (JSON escapes control characters), Hive's text
-- reader's default field delimiter, so each line is one field; .gz files are
-- decompressed by both Athena and ministack's DuckDB.
-- Not the JSON SerDe: ministack reads a JSON table with DuckDB's
-- read_json_auto, which infers Item as a STRUCT (one field per attribute
-- name), not the map<string, ...> Athena's SerDe gives, so no query text
-- would run on both.
-- {table}: the run's table name; {location}: s3://.../AWSDynamoDB/{id}/data/.
CREATE EXTERNAL TABLE {table} (
  line string
)
LOCATION '{location}'
