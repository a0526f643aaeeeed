-- Drops one of the run's tables (its files are deleted by vhs).
DROP TABLE IF EXISTS {table}
