# permafrost — plain Makefile with pkg-config.
#   make              build ./permafrost
#   make check        install missing dependencies, build, run every test, then again under ASan+UBSan
#   make demo         back up a throwaway Mastodon-shaped server, wipe it, restore it, prove it
#   make fuzz         longer libFuzzer runs
#   make install PREFIX=/usr/local
#   make deb          a Debian package in build/

PREFIX ?= /usr/local
BUILD ?= build
CC ?= cc
PKGS = libpq hiredis libzstd libcrypto libcurl libssh2 inih libcjson
# Asked of pkg-config on first use, not when the Makefile is read: `make check` and `make demo`
# install the -dev packages (target deps) before anything is compiled, so on a fresh machine
# the answer must come after that. A library still missing then stops the build, naming it.
pkg_query = $(or $(shell pkg-config $(1) $(PKGS) 2>/dev/null),$(error pkg-config cannot find \
  all of $(PKGS): run `make deps` (or scripts/install-deps.sh) as root to install them))
PKG_CFLAGS = $(eval PKG_CFLAGS := $(call pkg_query,--cflags))$(PKG_CFLAGS)
PKG_LIBS = $(eval PKG_LIBS := $(call pkg_query,--libs))$(PKG_LIBS)
CFLAGS ?= -O2 -g
override CFLAGS += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Isrc $(PKG_CFLAGS) -MMD -MP
override LDLIBS += $(PKG_LIBS) -lpthread -lm

LIB_SRC := $(filter-out src/main.c,$(shell find src -name '*.c' | sort))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
# tests/unit/ mirrors src/: the tests of src/repo/x.c are in tests/unit/repo/. The binaries
# stay flat in $(BUILD)/tests/ (the integration scripts name some of them).
UNIT_SRC := $(sort $(wildcard tests/unit/*/test_*.c))
UNIT_BIN := $(foreach t,$(UNIT_SRC),$(BUILD)/tests/$(basename $(notdir $(t))))

all: permafrost

permafrost: $(BUILD)/permafrost
	cp $< $@.tmp && mv -f $@.tmp $@

$(BUILD)/permafrost: $(BUILD)/src/main.o $(BUILD)/libpf.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/libpf.a: $(LIB_OBJ)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

define unit_rule
$(BUILD)/tests/$(basename $(notdir $(1))): $(1) $(BUILD)/libpf.a
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS) -o $$@ $$< $(BUILD)/libpf.a $$(LDLIBS) -lcmocka
endef
$(foreach t,$(UNIT_SRC),$(eval $(call unit_rule,$(t))))

unit: $(UNIT_BIN) lint-includes
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

# No file includes upward (the layers of docs/ARCHITECTURE.md); cheap, run with `unit`.
lint-includes:
	@tests/lint/includes.sh src

deps:
	@scripts/install-deps.sh

# The full suite: unit + integration, then both again under ASan+UBSan.
check: deps
	$(MAKE) all unit
	PERMAFROST=$(CURDIR)/permafrost BUILD=$(BUILD) tests/run-integration.sh
	$(MAKE) fuzz-smoke
	$(MAKE) asan-check

ASAN_FLAGS = -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
asan-check:
	$(MAKE) BUILD=build-asan CFLAGS="$(ASAN_FLAGS)" LDFLAGS="-fsanitize=address,undefined" build-asan/permafrost unit
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  PERMAFROST=$(CURDIR)/build-asan/permafrost BUILD=build-asan tests/run-integration.sh

FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
# The library is compiled once for all fuzzers (instrumented, not linked with libFuzzer's main).
FUZZ_CFLAGS = -O1 -g -fsanitize=fuzzer-no-link,address,undefined -std=c11 -D_GNU_SOURCE -Isrc $(PKG_CFLAGS) -MMD -MP
FUZZ_OBJ := $(LIB_SRC:%.c=build-fuzz/%.o)
build-fuzz/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -c -o $@ $<
build-fuzz/libpf.a: $(FUZZ_OBJ)
	rm -f $@
	ar rcs $@ $^
build-fuzz/fuzz_%: tests/fuzz/fuzz_%.c build-fuzz/libpf.a
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< build-fuzz/libpf.a $(LDLIBS)

# Every fuzzer for 10 s from the committed corpus and seeds; what it finds stays in build-fuzz/.
fuzz-smoke: $(FUZZ_TARGETS:%=build-fuzz/fuzz_%)
	@set -e; for t in $^; do n=$$(basename $$t); echo "== $$t (10 s)"; mkdir -p build-fuzz/smoke-$$n tests/fuzz/corpus/$$n; \
	  $$t -max_total_time=10 -max_len=65536 -artifact_prefix=build-fuzz/crash-$$n- build-fuzz/smoke-$$n \
	    tests/fuzz/corpus/$$n tests/fuzz/seeds/$$n >build-fuzz/smoke-$$n.log 2>&1 || \
	    { tail -30 build-fuzz/smoke-$$n.log; echo "fuzzer $$t found a crash"; exit 1; }; done

# Long runs: FUZZ_TIME seconds per fuzzer (default 30 min; FUZZ_TARGETS="env tree" picks some),
# growing the committed corpus in tests/fuzz/corpus/NAME. Crashes go to build-fuzz/crash-NAME-*;
# fix them and add them to tests/fuzz/seeds/NAME. Each run's executions and coverage are
# appended to build-fuzz/fuzz-stats.txt.
FUZZ_TIME ?= 1800
fuzz: $(FUZZ_TARGETS:%=build-fuzz/fuzz_%)
	@set -e; for t in $^; do n=$$(basename $$t); echo "== $$t ($(FUZZ_TIME) s)"; mkdir -p tests/fuzz/corpus/$$n; \
	  $$t -max_total_time=$(FUZZ_TIME) -max_len=65536 -print_final_stats=1 -artifact_prefix=build-fuzz/crash-$$n- \
	    tests/fuzz/corpus/$$n tests/fuzz/seeds/$$n >build-fuzz/$$n.log 2>&1 || { tail -30 build-fuzz/$$n.log; exit 1; }; \
	  echo "$$n $$(date -u +%FT%TZ) time=$(FUZZ_TIME)s $$(grep -o 'stat::number_of_executed_units: *[0-9]*' build-fuzz/$$n.log | grep -o '[0-9]*$$') execs, \
	  $$(grep -o 'cov: [0-9]* ft: [0-9]*' build-fuzz/$$n.log | tail -1), corpus $$(ls tests/fuzz/corpus/$$n | wc -l) files" \
	  | tee -a build-fuzz/fuzz-stats.txt; done
	@echo "corpora grew in tests/fuzz/corpus/; minimise before committing: make fuzz-merge"

# Shrinks each committed corpus to the inputs that add coverage.
fuzz-merge: $(FUZZ_TARGETS:%=build-fuzz/fuzz_%)
	@set -e; for t in $^; do n=$$(basename $$t); rm -rf build-fuzz/merge-$$n; mkdir -p build-fuzz/merge-$$n; \
	  $$t -merge=1 -max_len=65536 build-fuzz/merge-$$n tests/fuzz/corpus/$$n tests/fuzz/seeds/$$n >/dev/null 2>&1; \
	  rm -rf tests/fuzz/corpus/$$n; mv build-fuzz/merge-$$n tests/fuzz/corpus/$$n; \
	  echo "$$n: $$(ls tests/fuzz/corpus/$$n | wc -l) inputs"; done

demo: deps
	$(MAKE) all
	scripts/demo.sh

# The systemd units name /usr/local/bin/permafrost and /usr/local/lib/permafrost/: the
# copies installed name the PREFIX installed to. SYSTEMDDIR=/etc/systemd/system puts them
# with the local units.
SYSTEMDDIR ?= $(PREFIX)/lib/systemd/system
UNITS := $(wildcard contrib/systemd/*.service contrib/systemd/*.timer)
install: permafrost
	install -D -m 0755 permafrost $(DESTDIR)$(PREFIX)/bin/permafrost
	install -D -m 0644 docs/permafrost.1 $(DESTDIR)$(PREFIX)/share/man/man1/permafrost.1
	install -D -m 0644 docs/permafrost.conf.5 $(DESTDIR)$(PREFIX)/share/man/man5/permafrost.conf.5
	install -D -m 0644 contrib/permafrost.conf $(DESTDIR)$(PREFIX)/share/doc/permafrost/permafrost.conf
	install -D -m 0755 contrib/systemd/failure-notify $(DESTDIR)$(PREFIX)/lib/permafrost/failure-notify
	install -d $(DESTDIR)$(SYSTEMDDIR)
	for u in $(UNITS); do \
	  sed 's|/usr/local/|$(PREFIX)/|g' $$u >$(DESTDIR)$(SYSTEMDDIR)/$$(basename $$u).tmp && \
	  chmod 0644 $(DESTDIR)$(SYSTEMDDIR)/$$(basename $$u).tmp && \
	  mv -f $(DESTDIR)$(SYSTEMDDIR)/$$(basename $$u).tmp $(DESTDIR)$(SYSTEMDDIR)/$$(basename $$u) || exit 1; \
	done

# A Debian package of the built tree: build/permafrost_VERSION_ARCH.deb (scripts/make-deb.sh).
deb: all
	@scripts/make-deb.sh

format:
	clang-format -i $$(find src tests -name '*.[ch]')

clean:
	rm -rf build build-asan build-fuzz permafrost

.PHONY: all unit lint-includes deps check asan-check fuzz fuzz-smoke fuzz-merge demo install deb format clean
-include $(LIB_OBJ:.o=.d) $(BUILD)/src/main.d $(FUZZ_OBJ:.o=.d)

# ---- component test helper: tests/tools/pfcomp.c, used by tests/integration/components.sh.
# Built with `unit` so that it exists (with the same flags, ASan included) before the
# integration tests run.
$(BUILD)/tests/pfcomp: tests/tools/pfcomp.c $(BUILD)/libpf.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libpf.a $(LDLIBS)
unit: $(BUILD)/tests/pfcomp
# ---- end of component test helper

# ---- prune benchmark helper: bench/prune_blobs.c, used by bench/prune.sh (not built by
# default; bench/prune.sh builds it).
$(BUILD)/bench/prune_blobs: bench/prune_blobs.c $(BUILD)/libpf.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libpf.a $(LDLIBS)
# ---- end of prune benchmark helper

# ---- raw store client: tests/tools/pfstore.c, used by tests/integration/serve.sh.
$(BUILD)/tests/pfstore: tests/tools/pfstore.c $(BUILD)/libpf.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libpf.a $(LDLIBS)
unit: $(BUILD)/tests/pfstore
