# poll — PGXS build of the extension, and the project's top-level targets.
#
#   make            build the extension        make install   install it (and poll-fanout)
#   make run        private cluster + demo     make stop      stop what make run started
#   make test       every suite, from scratch  make bench     benchmarks -> bench/RESULTS.md

MODULE_big = poll
OBJS = src/poll.o src/cache.o src/segment.o src/vote.o src/batch.o src/launcher.o src/worker.o
EXTENSION = poll
DATA = poll--1.0.sql poll--1.1.sql poll--1.0--1.1.sql
PGFILEDESC = "poll - live polls inside PostgreSQL"

# PGBIN (a PostgreSQL 15 bin directory, relocated copies too) picks the server
PGBIN ?= /usr/lib/postgresql/15/bin
PG_CONFIG ?= $(PGBIN)/pg_config
PG_CPPFLAGS = -Isrc
PG_CFLAGS = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-sign-compare \
	-Wno-missing-field-initializers -Wno-cast-function-type

# no LLVM bitcode: JIT inlining of the vote path buys nothing, and clang
# need not be installed
override with_llvm = no

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# a VPATH build (pg_buildext's build-15/ for make deb) writes the objects
# under src/ there, which must exist
ifdef VPATH
$(shell mkdir -p src)
endif

# every object reads the shared declarations: a change of src/poll.h (the
# layout of the shared state, say) must rebuild them all
$(OBJS): src/poll.h

.PHONY: deps run stop test bench fanout

deps:
	@scripts/deps.sh

fanout:
	$(MAKE) -C fanout

run: deps
	@scripts/run.sh start

stop:
	@scripts/run.sh stop

test: deps
	@test/run.sh

bench: deps
	@QUICK=$(QUICK) bench/run.sh

# Debian packages (debian/, pg_buildext): postgresql-15-poll and poll-fanout
# in build/deb/
.PHONY: deb
deb:
	@scripts/build_deb.sh
