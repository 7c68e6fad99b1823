/*
 * poll--1.0--1.1.sql — ALTER EXTENSION poll UPDATE from 1.0 to 1.1.
 *
 * Every change to the schema between 1.0 and 1.1 is made here and in
 * poll--1.1.sql, in step: after this script a 1.0 installation holds the
 * same tables, columns, constraints, indexes, functions, grants and
 * comments as a fresh CREATE EXTENSION poll (test/integration/
 * upgrade_1_0_to_1_1.sh proves it), and keeps every poll, ballot,
 * pending change, tally and rollup.
 */

\echo Use "ALTER EXTENSION poll UPDATE TO '1.1'" to load this file. \quit
