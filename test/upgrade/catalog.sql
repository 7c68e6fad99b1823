-- catalog.sql — the schema of the poll extension in the current database, as
-- text lines without OIDs, each section sorted: run it in two databases and
-- diff the outputs (test/integration/upgrade_1_0_to_1_1.sh compares a 1.0
-- installation after ALTER EXTENSION poll UPDATE with a fresh CREATE EXTENSION).
--
-- Objects are named by pg_describe_object, regclass, regprocedure and
-- pg_get_*def; columns by position among the live ones (a dropped column
-- leaves a gap in attnum and changes nothing a user sees). What is physical
-- and not schema is left out: attnum gaps, fast-default "missing" values,
-- relfilenodes, statistics, the OIDs in the names of toast tables and of
-- foreign key triggers (masked as N),
-- and the attribute option pg_attver=<number> that this machine's server
-- build sets on every new column by itself (pg_dump does not dump it).
-- Objects with an OID below 16384 come with initdb and are the same in any
-- two databases of a cluster, so the catch-all sections skip them.
\set ON_ERROR_STOP 1
\pset format unaligned
\pset tuples_only on
\pset fieldsep ' | '
\pset null '<null>'
\pset pager off
SET search_path = pg_catalog;	-- names outside pg_catalog print schema-qualified
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';
SET IntervalStyle = 'postgres';
SET extra_float_digits = 1;

SELECT e.oid AS ext, e.extnamespace AS nsp FROM pg_extension e WHERE e.extname = 'poll' \gset
-- names that hold an OID: pg_toast.pg_toast_<table>, RI_ConstraintTrigger_a_<trigger>
\set oid_in_name '(pg_toast_|RI_ConstraintTrigger_[ac]_)[0-9]+'

-- the extension, its configuration tables (pg_dump dumps their data) and members
SELECT 'extension', e.extname, e.extversion, e.extrelocatable, e.extnamespace::regnamespace,
	   pg_get_userbyid(e.extowner)
  FROM pg_extension e WHERE e.oid = :ext;
SELECT 'extconfig', c.rel::regclass::text, coalesce(e.extcondition[c.i], '<none>')
  FROM pg_extension e, unnest(e.extconfig) WITH ORDINALITY AS c(rel, i)
 WHERE e.oid = :ext ORDER BY 2;
SELECT 'member', regexp_replace(pg_describe_object(d.classid, d.objid, d.objsubid), :'oid_in_name', '\1N', 'g')
  FROM pg_depend d
 WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = :ext AND d.deptype = 'e'
 ORDER BY 2;

SELECT 'schema', n.nspname, pg_get_userbyid(n.nspowner),
	   (SELECT string_agg(a::text, ' ' ORDER BY a::text) FROM unnest(n.nspacl) a)
  FROM pg_namespace n WHERE n.oid = :nsp;

-- relations: tables, sequences, views, indexes, composite types
SELECT 'relation', c.oid::regclass::text, c.relkind, c.relpersistence, c.relreplident,
	   pg_get_userbyid(c.relowner), am.amname, coalesce(ts.spcname, '<default>'),
	   (SELECT string_agg(o, ',' ORDER BY o) FROM unnest(c.reloptions) o),
	   c.relrowsecurity, c.relforcerowsecurity, c.relispartition, c.reltoastrelid <> 0,
	   c.reloftype::regtype, pg_get_partkeydef(c.oid), pg_get_expr(c.relpartbound, c.oid),
	   (SELECT string_agg(a::text, ' ' ORDER BY a::text) FROM unnest(c.relacl) a)
  FROM pg_class c
  LEFT JOIN pg_am am ON am.oid = c.relam
  LEFT JOIN pg_tablespace ts ON ts.oid = c.reltablespace
 WHERE c.relnamespace = :nsp
 ORDER BY 2;

SELECT 'column', c.oid::regclass::text,
	   row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum) AS position,
	   a.attname, format_type(a.atttypid, a.atttypmod),
	   CASE WHEN a.attcollation <> 0 THEN a.attcollation::regcollation::text END,
	   a.attnotnull, pg_get_expr(ad.adbin, ad.adrelid), a.attidentity, a.attgenerated,
	   a.attstorage, a.attcompression, a.attstattarget, a.attislocal, a.attinhcount,
	   (SELECT string_agg(o, ',' ORDER BY o) FROM unnest(a.attoptions) o
		 WHERE o NOT LIKE 'pg\_attver=%'),
	   (SELECT string_agg(o, ',' ORDER BY o) FROM unnest(a.attfdwoptions) o),
	   (SELECT string_agg(x::text, ' ' ORDER BY x::text) FROM unnest(a.attacl) x)
  FROM pg_class c
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
 WHERE c.relnamespace = :nsp
 ORDER BY 2, 3;

SELECT 'constraint', coalesce(c.conrelid::regclass::text, c.contypid::regtype::text), c.conname,
	   c.contype, pg_get_constraintdef(c.oid, true), c.condeferrable, c.condeferred,
	   c.convalidated, c.conislocal, c.coninhcount, c.connoinherit, c.conindid::regclass
  FROM pg_constraint c WHERE c.connamespace = :nsp
 ORDER BY 2, 3;

SELECT 'index', i.indrelid::regclass::text, pg_get_indexdef(i.indexrelid), i.indisprimary,
	   i.indisunique, i.indnullsnotdistinct, i.indisexclusion, i.indimmediate,
	   i.indisclustered, i.indisvalid, i.indisready, i.indislive, i.indisreplident
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE c.relnamespace = :nsp
 ORDER BY 2, 3;

SELECT 'inherits', i.inhrelid::regclass::text, i.inhparent::regclass, i.inhseqno
  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
 WHERE c.relnamespace = :nsp ORDER BY 2, 3;

SELECT 'sequence', s.seqrelid::regclass::text, s.seqtypid::regtype, s.seqstart, s.seqincrement,
	   s.seqmax, s.seqmin, s.seqcache, s.seqcycle
  FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
 WHERE c.relnamespace = :nsp ORDER BY 2;

-- definitions one line per line, each naming its object, so that a diff says where
SELECT 'view', c.oid::regclass::text, l.line
  FROM pg_class c, regexp_split_to_table(pg_get_viewdef(c.oid, true), E'\n') WITH ORDINALITY AS l(line, n)
 WHERE c.relnamespace = :nsp AND c.relkind IN ('v', 'm')
 ORDER BY 2, l.n;

SELECT 'rule', c.oid::regclass::text, r.rulename, r.ev_enabled, pg_get_ruledef(r.oid)
  FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class
 WHERE c.relnamespace = :nsp AND r.rulename <> '_RETURN'
 ORDER BY 2, 3;

-- an internal (foreign key) trigger's name holds an OID: name it by its constraint
SELECT 'trigger', c.oid::regclass::text,
	   CASE WHEN t.tgisinternal THEN 'internal for ' || k.conname ELSE t.tgname END,
	   t.tgenabled, t.tgisinternal,
	   CASE WHEN t.tgisinternal THEN t.tgtype || ' ' || t.tgfoid::regproc
			ELSE pg_get_triggerdef(t.oid, true) END
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
  LEFT JOIN pg_constraint k ON k.oid = t.tgconstraint
 WHERE c.relnamespace = :nsp
 ORDER BY 2, 3, 6;

SELECT 'policy', p.schemaname || '.' || p.tablename, p.policyname, p.permissive,
	   (SELECT string_agg(r, ',' ORDER BY r) FROM unnest(p.roles) r), p.cmd, p.qual, p.with_check
  FROM pg_policies p WHERE p.schemaname = 'poll'
 ORDER BY 2, 3;

SELECT 'statistics', s.stxname, pg_get_statisticsobjdef(s.oid), s.stxstattarget
  FROM pg_statistic_ext s WHERE s.stxnamespace = :nsp ORDER BY 2;

-- functions, procedures, aggregates; then the whole text of each
SELECT 'function', p.oid::regprocedure::text, p.prokind, pg_get_userbyid(p.proowner), l.lanname,
	   p.prosecdef, p.proleakproof, p.proisstrict, p.proretset, p.provolatile, p.proparallel,
	   p.procost, p.prorows, p.prosupport,
	   (SELECT string_agg(o, ',' ORDER BY o) FROM unnest(p.proconfig) o),
	   (SELECT string_agg(a::text, ' ' ORDER BY a::text) FROM unnest(p.proacl) a)
  FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
 WHERE p.pronamespace = :nsp
 ORDER BY 2;
SELECT 'function_def', p.oid::regprocedure::text, l.line
  FROM pg_proc p, regexp_split_to_table(pg_get_functiondef(p.oid), E'\n') WITH ORDINALITY AS l(line, n)
 WHERE p.pronamespace = :nsp AND p.prokind <> 'a'
 ORDER BY 2, l.n;
SELECT 'aggregate', a.aggfnoid::regprocedure::text, a.aggkind, a.aggnumdirectargs,
	   a.aggtransfn::regproc, a.aggfinalfn::regproc, a.aggcombinefn::regproc,
	   a.aggserialfn::regproc, a.aggdeserialfn::regproc, a.aggmtransfn::regproc,
	   a.aggminvtransfn::regproc, a.aggmfinalfn::regproc, a.aggfinalextra, a.aggmfinalextra,
	   a.aggfinalmodify, a.aggmfinalmodify, a.aggsortop::regoperator, a.aggtranstype::regtype,
	   a.aggtransspace, a.aggmtranstype::regtype, a.aggmtransspace, a.agginitval, a.aggminitval
  FROM pg_aggregate a JOIN pg_proc p ON p.oid = a.aggfnoid
 WHERE p.pronamespace = :nsp ORDER BY 2;

SELECT 'type', t.oid::regtype::text, t.typtype, t.typcategory, t.typispreferred,
	   pg_get_userbyid(t.typowner), t.typrelid::regclass, t.typelem::regtype,
	   t.typbasetype::regtype, t.typtypmod, t.typnotnull, t.typdefault,
	   CASE WHEN t.typcollation <> 0 THEN t.typcollation::regcollation::text END,
	   t.typlen, t.typbyval, t.typalign, t.typstorage, t.typdelim,
	   t.typinput::regproc, t.typoutput::regproc, t.typreceive::regproc, t.typsend::regproc,
	   t.typmodin::regproc, t.typmodout::regproc, t.typanalyze::regproc, t.typsubscript::regproc,
	   (SELECT string_agg(a::text, ' ' ORDER BY a::text) FROM unnest(t.typacl) a)
  FROM pg_type t WHERE t.typnamespace = :nsp ORDER BY 2;
SELECT 'enum', e.enumtypid::regtype::text,
	   rank() OVER (PARTITION BY e.enumtypid ORDER BY e.enumsortorder), e.enumlabel
  FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid
 WHERE t.typnamespace = :nsp ORDER BY 2, 3;
SELECT 'range', r.rngtypid::regtype::text, r.rngsubtype::regtype, r.rngmultitypid::regtype,
	   r.rngcollation, r.rngsubopc, r.rngcanonical::regproc, r.rngsubdiff::regproc
  FROM pg_range r JOIN pg_type t ON t.oid = r.rngtypid
 WHERE t.typnamespace = :nsp ORDER BY 2;

SELECT 'operator', o.oid::regoperator::text, o.oprkind, pg_get_userbyid(o.oprowner),
	   o.oprcode::regproc, o.oprrest::regproc, o.oprjoin::regproc, o.oprcom::regoperator,
	   o.oprnegate::regoperator, o.oprcanmerge, o.oprcanhash
  FROM pg_operator o WHERE o.oprnamespace = :nsp ORDER BY 2;
SELECT 'opclass', m.amname, c.opcname, c.opcintype::regtype, c.opcdefault, c.opckeytype::regtype
  FROM pg_opclass c JOIN pg_am m ON m.oid = c.opcmethod
 WHERE c.opcnamespace = :nsp ORDER BY 2, 3;
SELECT 'opfamily', m.amname, f.opfname
  FROM pg_opfamily f JOIN pg_am m ON m.oid = f.opfmethod
 WHERE f.opfnamespace = :nsp ORDER BY 2, 3;
SELECT 'cast', c.castsource::regtype::text, c.casttarget::regtype::text,
	   c.castfunc::regprocedure, c.castcontext, c.castmethod
  FROM pg_cast c WHERE c.oid >= 16384 ORDER BY 2, 3;
SELECT 'event_trigger', e.evtname, e.evtevent, pg_get_userbyid(e.evtowner), e.evtfoid::regproc,
	   e.evtenabled, e.evttags
  FROM pg_event_trigger e ORDER BY 2;

-- the change feed: publications are not extension members, so every one
SELECT 'publication', p.pubname, pg_get_userbyid(p.pubowner), p.puballtables, p.pubinsert,
	   p.pubupdate, p.pubdelete, p.pubtruncate, p.pubviaroot
  FROM pg_publication p ORDER BY 2;
SELECT 'publication_rel', p.pubname, r.prrelid::regclass::text, pg_get_expr(r.prqual, r.prrelid),
	   (SELECT string_agg(a.attname, ',' ORDER BY a.attname) FROM pg_attribute a
		 WHERE a.attrelid = r.prrelid AND a.attnum = ANY (r.prattrs))
  FROM pg_publication_rel r JOIN pg_publication p ON p.oid = r.prpubid ORDER BY 2, 3;
SELECT 'publication_schema', p.pubname, s.pnnspid::regnamespace::text
  FROM pg_publication_namespace s JOIN pg_publication p ON p.oid = s.pnpubid ORDER BY 2, 3;
SELECT 'publication_table', t.pubname, t.schemaname || '.' || t.tablename,
	   array_to_string(t.attnames, ','), t.rowfilter
  FROM pg_publication_tables t ORDER BY 2, 3;

SELECT 'default_acl', pg_get_userbyid(d.defaclrole), d.defaclnamespace::regnamespace::text,
	   d.defaclobjtype, (SELECT string_agg(a::text, ' ' ORDER BY a::text) FROM unnest(d.defaclacl) a)
  FROM pg_default_acl d ORDER BY 2, 3, 4;

-- the privileges pg_dump takes as the extension's own (granted by its scripts)
SELECT 'init_privs', regexp_replace(pg_describe_object(i.classoid, i.objoid, i.objsubid), :'oid_in_name', '\1N', 'g'), i.privtype,
	   (SELECT string_agg(a::text, ' ' ORDER BY a::text) FROM unnest(i.initprivs) a)
  FROM pg_init_privs i WHERE i.objoid >= 16384 ORDER BY 2, 3;

-- comments on every object and column
SELECT 'comment', regexp_replace(pg_describe_object(d.classoid, d.objoid, d.objsubid), :'oid_in_name', '\1N', 'g'), d.description
  FROM pg_description d WHERE d.objoid >= 16384 ORDER BY 2, 3;

-- every dependency (ownership of a sequence by a column, what a view reads,
-- extension membership, ...) and every reference to a role (owners, grants)
SELECT DISTINCT 'depend', regexp_replace(pg_describe_object(d.classid, d.objid, d.objsubid), :'oid_in_name', '\1N', 'g'),
	   regexp_replace(pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid), :'oid_in_name', '\1N', 'g'), d.deptype
  FROM pg_depend d WHERE d.objid >= 16384 OR d.refobjid >= 16384 ORDER BY 2, 3, 4;
SELECT DISTINCT 'shdepend', regexp_replace(pg_describe_object(d.classid, d.objid, d.objsubid), :'oid_in_name', '\1N', 'g'),
	   pg_describe_object(d.refclassid, d.refobjid, 0), d.deptype
  FROM pg_shdepend d
 WHERE d.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
 ORDER BY 2, 3, 4;
