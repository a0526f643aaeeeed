-- The objects under the table's prefix, as vhs listed them (ListObjectsV2),
-- one tab-separated line per object: the escaped key, the size in bytes and
-- LastModified in epoch milliseconds (empty when the server gave none).
-- {table}: the run's table name; {location}: s3://bucket/prefix/ of the files.
CREATE EXTERNAL TABLE {table} (
  key string,
  size bigint,
  last_modified bigint
)
ROW FORMAT DELIMITED FIELDS TERMINATED BY '\t'
LOCATION '{location}'
