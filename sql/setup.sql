-- The extension installs into a fresh database, with the test helpers.
CREATE EXTENSION poll;
\i invariants.sql
SELECT extname, extversion FROM pg_extension WHERE extname = 'poll';
SELECT rolname FROM pg_roles WHERE rolname LIKE 'poll\_%' ORDER BY 1;
SELECT pubname, schemaname, tablename FROM pg_publication_tables WHERE pubname = 'poll_feed';
