#!/usr/bin/python3
"""validate_meta.py SCHEMA META.json: checks a PGXN META.json against the
meta-spec 1.0.0 schema with Debian's python3-jsonschema (Draft 2020-12,
formats checked); prints each violation and exits 1 if there is one."""
import json
import sys

import jsonschema

schema_path, meta_path = sys.argv[1], sys.argv[2]
with open(schema_path) as f:
    schema = json.load(f)
with open(meta_path) as f:
    meta = json.load(f)
cls = jsonschema.Draft202012Validator
cls.check_schema(schema)
errors = sorted(cls(schema, format_checker=cls.FORMAT_CHECKER).iter_errors(meta),
                key=lambda e: list(e.absolute_path))
for e in errors:
    print("%s: %s: %s" % (meta_path, "/".join(map(str, e.absolute_path)) or "(top)", e.message))
sys.exit(1 if errors else 0)
