-- (verify) Pointers whose object was not in the listing. vhs reads each one's
-- item again and sends a HeadObject before it reports it: the export and the
-- listing are snapshots taken at different times.
SELECT p.key, p.hash_key, p.range_key, p.attr
FROM {pointers} p
LEFT JOIN {listing} o ON o.key = p.key
WHERE o.key IS NULL
