-- (verify) Each pointer of a live item that names an object of this store:
-- the escaped object key, the item's hash and range key values as text
-- (escaped; the range empty for a table without one) and the attribute.
CREATE EXTERNAL TABLE {table} (
  key string,
  hash_key string,
  range_key string,
  attr string
)
ROW FORMAT DELIMITED FIELDS TERMINATED BY '\t'
LOCATION '{location}'
