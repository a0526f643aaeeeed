-- Objects no live item references: GC's candidates (vhs then keeps those
-- younger than the grace period, counting them as too young, and those not
-- in its key layout, counting them as foreign) and verify's orphans.
-- Every unreferenced object is returned, young ones too, so that both
-- engines report the same counts; orphans are few, the listing is not.
SELECT o.key, o.size, o.last_modified
FROM {listing} o
LEFT JOIN {references} r ON r.key = o.key
WHERE r.key IS NULL
