-- make_traps.sql — the trap schema of test/integration/trap_schema.sh.
--
-- Run by psql as the database's owner, a role that is NOT a superuser, with
-- sql_tokens.pl's output on standard input (every name and operator symbol
-- that the project's SQL uses).  In schema trap, and again in public, it
-- creates an object of the same name for each pg_catalog object those
-- tokens name:
--   - a function with the same arguments (names, defaults, VARIADIC) for
--     every function of that name;
--   - an aggregate with the same arguments for every aggregate of that name;
--   - an operator with the same operand types for every operator of that
--     symbol (and for the operators SQL syntax implies: IN, BETWEEN, LIKE,
--     CASE, NULLIF, IS DISTINCT FROM, JOIN USING);
--   - a domain over every type of that name (a cast to it, or a column or
--     variable of it, runs the domain's check);
--   - a view over every relation of that name in pg_catalog and in poll.
-- Where pg_catalog's argument is of type "any", which only C can declare,
-- the trap takes each of a list of common types instead: for a call with
-- such an argument it is an exact match, which wins over "any" wherever it
-- stands in the search_path.
--
-- Each trap calls trap._trap_fire(), which RAISEs a WARNING "TRAP FIRED:"
-- naming the trap and the roles it runs as: the server log keeps it even
-- when the transaction rolls back, in any backend (sessions, the
-- background worker, poll-fanout's).  Then it does what the shadowed
-- object does (it calls it, schema-qualified), so that poll goes on
-- working and one run reports every hole.  An object that PL/pgSQL cannot
-- express (arguments of type internal or cstring, window functions,
-- ordered-set aggregates, ...) is skipped and counted.
--
-- Prints "made|kind|schema|created|skipped" for each kind and schema, then,
-- for schema trap, "shadowed|kind|same signature|named|all in pg_catalog",
-- "why|kind|reason|skipped" and "skipped|kind|what|why".
\set ON_ERROR_STOP 1
SET search_path = pg_catalog, pg_temp;
SET client_min_messages = warning;

CREATE TEMP TABLE trap_token (kind text, name text);
\copy trap_token FROM pstdin
-- the operators SQL syntax implies, written or not
INSERT INTO trap_token
SELECT 'op', unnest('{=,<>,<,>,<=,>=,~~,!~~,~~*,!~~*,~,!~,-,||}'::text[]);

-- the argument types a trap takes where pg_catalog's takes "any"
CREATE TEMP TABLE trap_any_type (t regtype);
INSERT INTO trap_any_type
VALUES ('text'), ('integer'), ('bigint'), ('smallint'), ('numeric'), ('double precision'),
	   ('boolean'), ('timestamp with time zone'), ('interval'), ('jsonb'), ('json'),
	   ('name'), ('oid'), ('integer[]'), ('bigint[]'), ('text[]');

CREATE TEMP TABLE trap_result (kind text, what text, ok boolean, why text);

CREATE SCHEMA trap;
GRANT USAGE ON SCHEMA trap TO PUBLIC;

CREATE FUNCTION trap._trap_fire(what text) RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RAISE WARNING 'TRAP FIRED: % (current_user %, session_user %, application_name "%")',
		what, current_user, session_user, current_setting('application_name');
	RETURN true;
END
$$;

-- the 1-D slices of an array of arrays, in order (aggregates over arrays)
CREATE FUNCTION trap._trap_slices(a anyarray) RETURNS SETOF anyarray
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s	a%TYPE;
BEGIN
	IF cardinality(a) > 0 THEN
		FOREACH s SLICE 1 IN ARRAY a LOOP
			RETURN NEXT s;
		END LOOP;
	END IF;
END
$$;

-- runs one CREATE; a failure is recorded as a skip with its reason
CREATE FUNCTION pg_temp.trap_try(kind text, what text, VARIADIC stmts text[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	s	text;
BEGIN
	FOREACH s IN ARRAY stmts LOOP
		EXECUTE s;
	END LOOP;
	INSERT INTO trap_result VALUES (kind, what, true, NULL);
EXCEPTION WHEN OTHERS THEN
	INSERT INTO trap_result VALUES (kind, what, false,
		regexp_replace(SQLERRM, '"[^"]*"|\m[0-9]+\M', 'X', 'g'));
END
$$;

-- Functions: the arguments of pg_catalog's (names, defaults, VARIADIC), of
-- the types given (NULL: pg_catalog's own).  An input argument whose name an
-- output one also has (PL/pgSQL refuses that) goes without its name.
CREATE FUNCTION pg_temp.trap_function(target text, p pg_proc, types oid[], suffix text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	modes	"char"[] := coalesce(p.proargmodes, array_fill('i'::"char", ARRAY[p.pronargs]));
	names	text[] := coalesce(p.proargnames, array_fill(''::text, ARRAY[cardinality(modes)]));
	alltypes oid[] := coalesce(p.proallargtypes, ARRAY(SELECT unnest(p.proargtypes::oid[])));
	outnames text[] := ARRAY(SELECT names[i] FROM generate_subscripts(modes, 1) i
							  WHERE modes[i] IN ('o', 'b', 't') AND names[i] <> '');
	input	boolean;
	decl	text := '';
	call	text := '';
	outs	text := '';
	body	text;
	k		int := 0;
	sig		text;
BEGIN
	FOR i IN 1 .. cardinality(modes) LOOP
		CONTINUE WHEN modes[i] = 't';	-- TABLE columns: in the RETURNS clause
		input := modes[i] IN ('i', 'b', 'v');
		IF input THEN
			k := k + 1;
		END IF;
		decl := decl || CASE WHEN decl = '' THEN '' ELSE ', ' END
			|| CASE modes[i] WHEN 'o' THEN 'OUT ' WHEN 'b' THEN 'INOUT ' WHEN 'v' THEN 'VARIADIC ' ELSE '' END
			|| CASE WHEN names[i] = '' OR (modes[i] IN ('i', 'v') AND names[i] = ANY (outnames)) THEN ''
					ELSE quote_ident(names[i]) || ' ' END
			|| format_type(CASE WHEN input AND types IS NOT NULL THEN types[k] ELSE alltypes[i] END, NULL)
			|| coalesce(' DEFAULT ' || CASE WHEN input THEN pg_get_function_arg_default(p.oid, i) END, '');
		IF input THEN
			call := call || CASE WHEN call = '' THEN '' ELSE ', ' END
				|| CASE WHEN modes[i] = 'v' THEN 'VARIADIC ' ELSE '' END || '$' || i;
		END IF;
		IF modes[i] IN ('o', 'b') THEN
			outs := outs || CASE WHEN outs = '' THEN '' ELSE ', ' END || '$' || i;
		END IF;
	END LOOP;
	call := format('%s(%s)', 'pg_catalog.' || quote_ident(p.proname), call);
	body := CASE
		WHEN p.proretset AND (outs <> '' OR p.prorettype <> 'record'::regtype OR 't' = ANY (modes))
			THEN format('RETURN QUERY SELECT * FROM %s;', call)
		WHEN p.proretset THEN 'RETURN;'		-- SETOF record: the caller's column list is unknown
		WHEN outs <> '' THEN format('SELECT * INTO %s FROM %s;', outs, call)
		WHEN p.prorettype = 'void'::regtype THEN format('PERFORM %s;', call)
		ELSE format('RETURN %s;', call)
	END;
	sig := format('%s.%s(%s)%s', target, p.proname,
				  CASE WHEN types IS NULL THEN pg_get_function_identity_arguments(p.oid)
					   ELSE decl END, suffix);
	PERFORM pg_temp.trap_try('function', sig, format(
		'CREATE FUNCTION %I.%I(%s) RETURNS %s LANGUAGE plpgsql %s CALLED ON NULL INPUT'
		' SET search_path = pg_catalog, pg_temp AS %L',
		target, p.proname, decl, pg_get_function_result(p.oid),
		CASE p.provolatile WHEN 'i' THEN 'IMMUTABLE' WHEN 's' THEN 'STABLE' ELSE 'VOLATILE' END,
		format(E'BEGIN\n\tPERFORM trap._trap_fire(%L);\n\t%s\nEND', 'function ' || sig, body)));
END
$$;

-- Aggregates, from pg_catalog's by collecting the inputs and handing them
-- to it in the final function.  types: this trap's argument types.
CREATE FUNCTION pg_temp.trap_aggregate(target text, p pg_proc, types oid[], tag text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	n		int := cardinality(types);
	ret		text := format_type(p.prorettype, NULL);
	argl	text := (SELECT string_agg(format_type(t, NULL), ', ') FROM unnest(types) t);
	sig		text := format('%s.%s(%s)', target, p.proname, CASE WHEN n = 0 THEN '*' ELSE argl END);
	fire	text := format('PERFORM trap._trap_fire(%L);', 'aggregate ' || sig);
	sfn		text := format('%I._trap_agg_%s_s', target, tag);
	ffn		text := format('%I._trap_agg_%s_f', target, tag);
	poly	boolean := EXISTS (SELECT FROM unnest(types) t
							   WHERE t::regtype::text LIKE 'any%' OR t = 'record'::regtype);
	t1		oid := types[1];
	arr		boolean;
	stype	text;
	sbody	text;
	fbody	text;
BEGIN
	IF n = 0 THEN			-- count(*)
		stype := 'bigint';
		sbody := 'RETURN $1 + 1;';
		fbody := 'RETURN $1;';
	ELSIF n = 1 AND t1 NOT IN ('anyrange'::regtype, 'anymultirange'::regtype, 'record'::regtype) THEN
		arr := t1 IN ('anyarray'::regtype, 'anycompatiblearray'::regtype)
			   OR (SELECT typcategory = 'A' FROM pg_type WHERE oid = t1);
		stype := CASE
			WHEN arr THEN format_type(t1, NULL)
			WHEN t1::regtype::text LIKE 'anycompatible%' THEN 'anycompatiblearray'
			WHEN poly THEN 'anyarray'
			ELSE format_type(t1, NULL) || '[]' END;
		sbody := CASE WHEN arr THEN 'RETURN array_cat($1, ARRAY[$2]);'
					  ELSE 'RETURN array_append($1, $2);' END;
		fbody := format('RETURN (SELECT pg_catalog.%I(x ORDER BY o) FROM %s WITH ORDINALITY AS u(x, o));',
						p.proname, CASE WHEN arr THEN 'trap._trap_slices($1)' ELSE 'unnest($1)' END);
	ELSIF n > 1 AND NOT poly THEN	-- several arguments: kept as text, n per row
		stype := 'text[]';
		sbody := format('RETURN array_cat($1, ARRAY[%s]);',
						(SELECT string_agg(format('$%s::text', i + 1), ', ')
						   FROM generate_series(1, n) i));
		fbody := format('RETURN (SELECT pg_catalog.%I(%s ORDER BY r) FROM generate_series(0, cardinality($1) / %s - 1) r);',
						p.proname,
						(SELECT string_agg(format('($1[r * %s + %s])::%s', n, i, format_type(types[i], NULL)), ', ')
						   FROM generate_series(1, n) i), n);
	ELSE
		INSERT INTO trap_result VALUES ('aggregate', sig, false, 'polymorphic arguments of several kinds');
		RETURN;
	END IF;
	PERFORM pg_temp.trap_try('aggregate', sig,
		format('CREATE FUNCTION %s(%s%s) RETURNS %s LANGUAGE plpgsql IMMUTABLE'
			   ' SET search_path = pg_catalog, pg_temp AS %L',
			   sfn, stype, CASE WHEN n = 0 THEN '' ELSE ', ' || argl END, stype,
			   format('BEGIN %s END', sbody)),
		format('CREATE FUNCTION %s(%s) RETURNS %s LANGUAGE plpgsql VOLATILE'
			   ' SET search_path = pg_catalog, pg_temp AS %L',
			   ffn, stype, ret, format('BEGIN %s %s END', fire, fbody)),
		format('CREATE AGGREGATE %I.%I(%s) (SFUNC = %s, STYPE = %s, INITCOND = %L,'
			   ' FINALFUNC = %s, FINALFUNC_MODIFY = READ_ONLY)',
			   target, p.proname, CASE WHEN n = 0 THEN '*' ELSE argl END, sfn, stype,
			   CASE WHEN n = 0 THEN '0' ELSE '{}' END, ffn));
END
$$;

CREATE FUNCTION pg_temp.trap_schema(target text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	p		pg_proc;
	o		record;
	r		record;
	anyi	int[];
	tag		text;
BEGIN
	-- functions and aggregates named by a token
	FOR p IN SELECT * FROM pg_proc
			  WHERE pronamespace = 'pg_catalog'::regnamespace
				AND proname IN (SELECT name FROM trap_token WHERE kind = 'ident')
			  ORDER BY proname, oid LOOP
		anyi := ARRAY(SELECT 1 FROM unnest(p.proargtypes::oid[]) a WHERE a = '"any"'::regtype);
		IF p.prokind = 'w' THEN
			INSERT INTO trap_result VALUES ('function', target || '.' || p.oid::regprocedure::text, false,
											'window function (C only)');
		ELSIF p.prokind = 'a' THEN
			IF (SELECT aggkind FROM pg_aggregate WHERE aggfnoid = p.oid) <> 'n' THEN
				INSERT INTO trap_result VALUES ('aggregate', target || '.' || p.oid::regprocedure::text,
												false, 'ordered-set aggregate');
			ELSIF cardinality(anyi) = 0 THEN
				PERFORM pg_temp.trap_aggregate(target, p, ARRAY(SELECT unnest(p.proargtypes::oid[])),
											   p.oid::text);
			ELSE
				FOR o IN SELECT t FROM trap_any_type LOOP
					PERFORM pg_temp.trap_aggregate(target, p,
						ARRAY(SELECT CASE WHEN a = '"any"'::regtype THEN o.t ELSE a END
								FROM unnest(p.proargtypes::oid[]) a), p.oid || '_' || o.t::oid);
				END LOOP;
			END IF;
		ELSIF cardinality(anyi) = 0 THEN
			PERFORM pg_temp.trap_function(target, p, NULL, '');
		ELSE
			-- "any": one trap per common type (a VARIADIC "any" takes an array of it)
			FOR o IN SELECT t FROM trap_any_type
					  WHERE p.provariadic = 0 OR (SELECT typarray <> 0 FROM pg_type WHERE oid = t) LOOP
				PERFORM pg_temp.trap_function(target, p,
					ARRAY(SELECT CASE WHEN a <> '"any"'::regtype THEN a
									  WHEN p.provariadic <> 0 AND i = p.pronargs
									  THEN (SELECT typarray FROM pg_type WHERE oid = o.t)
									  ELSE o.t END
							FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY AS u(a, i)),
					' [for "any"]');
			END LOOP;
		END IF;
	END LOOP;

	-- operators
	FOR o IN SELECT op.*, format('%s(%s, %s)', op.oprname,
								 CASE WHEN op.oprleft = 0 THEN 'NONE' ELSE format_type(op.oprleft, NULL) END,
								 format_type(op.oprright, NULL)) AS sig
			   FROM pg_operator op
			  WHERE oprnamespace = 'pg_catalog'::regnamespace
				AND oprname IN (SELECT name FROM trap_token WHERE kind = 'op')
			  ORDER BY oprname, oid LOOP
		tag := format('%I._trap_op_%s', target, o.oid);
		PERFORM pg_temp.trap_try('operator', target || '.' || o.sig,
			format('CREATE FUNCTION %s(%s) RETURNS %s LANGUAGE plpgsql %s CALLED ON NULL INPUT'
				   ' SET search_path = pg_catalog, pg_temp AS %L',
				   tag,
				   CASE WHEN o.oprleft = 0 THEN format_type(o.oprright, NULL)
						ELSE format_type(o.oprleft, NULL) || ', ' || format_type(o.oprright, NULL) END,
				   format_type(o.oprresult, NULL),
				   (SELECT CASE provolatile WHEN 'i' THEN 'IMMUTABLE' WHEN 's' THEN 'STABLE' ELSE 'VOLATILE' END
					  FROM pg_proc WHERE oid = o.oprcode),
				   format('BEGIN PERFORM trap._trap_fire(%L); RETURN %s OPERATOR(pg_catalog.%s) $%s; END',
						  'operator ' || target || '.' || o.sig,
						  CASE WHEN o.oprleft = 0 THEN '' ELSE '$1' END, o.oprname,
						  CASE WHEN o.oprleft = 0 THEN 1 ELSE 2 END)),
			format('CREATE OPERATOR %I.%s (%s RIGHTARG = %s, FUNCTION = %s%s%s)',
				   target, o.oprname,
				   CASE WHEN o.oprleft = 0 THEN '' ELSE 'LEFTARG = ' || format_type(o.oprleft, NULL) || ',' END,
				   format_type(o.oprright, NULL), tag,
				   CASE WHEN o.oprrest <> 0 THEN ', RESTRICT = ' || o.oprrest::regproc ELSE '' END,
				   CASE WHEN o.oprjoin <> 0 THEN ', JOIN = ' || o.oprjoin::regproc ELSE '' END));
	END LOOP;

	-- types: a domain of the same name
	FOR r IN SELECT t.oid, t.typname FROM pg_type t
			  WHERE typnamespace = 'pg_catalog'::regnamespace
				AND typrelid = 0		-- a relation's row type: see relations
				AND typname IN (SELECT name FROM trap_token WHERE kind = 'ident')
			  ORDER BY typname LOOP
		PERFORM pg_temp.trap_try('type', format('%s.%s', target, r.typname),
			format('CREATE DOMAIN %I.%I AS %s CHECK (trap._trap_fire(%L))',
				   target, r.typname, r.oid::regtype, format('type %s.%s', target, r.typname)));
	END LOOP;

	-- relations: a view of the same name, reading the original where the
	-- owner may (pg_catalog), else rows of NULLs of the same columns; it
	-- fires once per scan (an initplan)
	FOR r IN SELECT c.oid, c.relname FROM pg_class c
			  WHERE c.relnamespace IN ('pg_catalog'::regnamespace, to_regnamespace('poll'))
				AND c.relkind IN ('r', 'v', 'm', 'p', 'f')
				AND c.relname IN (SELECT name FROM trap_token WHERE kind = 'ident')
			  ORDER BY c.relname, c.oid LOOP
		PERFORM pg_temp.trap_try('relation', format('%s.%s', target, r.relname),
			format('CREATE VIEW %I.%I AS SELECT %s %s WHERE (SELECT trap._trap_fire(%L))',
				   target, r.relname,
				   CASE WHEN has_table_privilege(r.oid, 'SELECT') THEN '*'
						ELSE (SELECT string_agg(format('NULL::%s AS %I', format_type(atttypid, atttypmod), attname), ', ' ORDER BY attnum)
								FROM pg_attribute WHERE attrelid = r.oid AND attnum > 0 AND NOT attisdropped) END,
				   CASE WHEN has_table_privilege(r.oid, 'SELECT') THEN 'FROM ' || r.oid::regclass::text ELSE '' END,
				   format('relation %s.%s', target, r.relname)),
			format('GRANT SELECT ON %I.%I TO PUBLIC', target, r.relname));
	END LOOP;
END
$$;

DO $$
BEGIN
	PERFORM pg_temp.trap_schema('trap');
	PERFORM pg_temp.trap_schema('public');
END
$$;

\pset format unaligned
\pset tuples_only on
SELECT 'made', kind, split_part(what, '.', 1), count(*) FILTER (WHERE ok), count(*) FILTER (WHERE NOT ok)
  FROM trap_result GROUP BY 2, 3 ORDER BY 2, 3 DESC;
-- pg_catalog's objects that schema trap shadows with the same signature
SELECT 'shadowed', CASE c.prokind WHEN 'a' THEN 'aggregate' ELSE 'function' END,
	   count(*) FILTER (WHERE EXISTS (SELECT FROM pg_proc t
									  WHERE t.pronamespace = 'trap'::regnamespace
										AND t.proname = c.proname AND t.proargtypes = c.proargtypes)),
	   count(*) FILTER (WHERE c.proname IN (SELECT name FROM trap_token WHERE kind = 'ident')),
	   count(*)
  FROM pg_proc c WHERE c.pronamespace = 'pg_catalog'::regnamespace GROUP BY 2 ORDER BY 2;
SELECT 'shadowed', 'operator',
	   count(*) FILTER (WHERE EXISTS (SELECT FROM pg_operator t
									  WHERE t.oprnamespace = 'trap'::regnamespace AND t.oprname = c.oprname
										AND t.oprleft = c.oprleft AND t.oprright = c.oprright)),
	   count(*) FILTER (WHERE c.oprname IN (SELECT name FROM trap_token WHERE kind = 'op')),
	   count(*)
  FROM pg_operator c WHERE c.oprnamespace = 'pg_catalog'::regnamespace;
SELECT 'why', kind, why, count(*) FROM trap_result WHERE NOT ok AND what LIKE 'trap.%' GROUP BY 2, 3 ORDER BY 2, 4 DESC;
SELECT 'skipped', kind, what, why FROM trap_result WHERE NOT ok AND what LIKE 'trap.%' ORDER BY 1, 2, 3;
