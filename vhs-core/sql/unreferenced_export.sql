-- unreferenced.sql with the references read from a DynamoDB export
-- (create_export.sql) instead of the files of vhs's scan: every top-level
-- String attribute of an item without a placeholder (vhs:ph) whose value
-- starts with s3://{bucket}/ references the key after it, the rule of the
-- scan. The listing holds escaped keys (vhs_core::escape, which leaves no
-- '+'), so the join compares url_decode(listing key) with the raw key.
-- CAST(JSON AS VARCHAR) yields a JSON string's value on Athena but the
-- quoted JSON text on DuckDB (ministack), hence the trim of '"': exact on
-- DuckDB only for keys with no '"', '\' or control character (vhs's own
-- object keys have none; a referenced key with one would show up as a
-- candidate there, which the mark then refuses: it re-reads the item).
-- SAFETY: the export is a snapshot at its exportTime. An object uploaded
-- after it and referenced by an item written after it is in the listing
-- but not in the export: vhs counts every object younger than exportTime
-- minus the grace period as too young (never a candidate), measuring the
-- grace from the export's time, not from now.
-- The literal is split ('s3:' || '//...'): ministack rewrites every quoted
-- 's3://...' literal of a query into a local file path.
-- {bucket}: the store's bucket; {skip}: the length of s3://{bucket}/.
SELECT o.key, o.size, o.last_modified
FROM {listing} o
LEFT JOIN (
  SELECT DISTINCT substr(s.value, {skip} + 1) AS key
  FROM (
    SELECT trim(BOTH '"' FROM CAST(json_extract(a.v, '$.S') AS VARCHAR)) AS value
    FROM (
      SELECT CAST(json_extract(e.line, '$.Item') AS MAP(VARCHAR, JSON)) AS item
      FROM {export} e
    ) i
    CROSS JOIN UNNEST(map_values(i.item)) AS a(v)
    WHERE NOT contains(map_keys(i.item), 'vhs:ph')
  ) s
  WHERE starts_with(s.value, 's3:' || '//{bucket}/')
) r ON r.key = url_decode(o.key)
WHERE r.key IS NULL
