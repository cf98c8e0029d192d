# permafrost — plain Makefile with pkg-config.
#   make              build ./permafrost
#   make check        install missing dependencies, build, run every test, then again under ASan+UBSan
#   make demo         back up a throwaway Mastodon-shaped server, wipe it, restore it, prove it
#   make fuzz         longer libFuzzer runs
#   make install PREFIX=/usr/local

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
override LDLIBS += $(PKG_LIBS) -lpthread

LIB_SRC := $(filter-out src/main.c,$(shell find src -name '*.c' | sort))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

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

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libpf.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit -o $@ $< $(BUILD)/libpf.a $(LDLIBS) -lcmocka

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

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
FUZZ_CFLAGS = -O1 -g -fsanitize=fuzzer,address,undefined -std=c11 -D_GNU_SOURCE -Isrc $(PKG_CFLAGS)
build-fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(LIB_SRC)
	@mkdir -p build-fuzz
	clang $(FUZZ_CFLAGS) -o $@ $< $(LIB_SRC) $(LDLIBS)

fuzz-smoke: $(FUZZ_TARGETS:%=build-fuzz/fuzz_%)
	@set -e; for t in $^; do echo "== $$t (10 s)"; mkdir -p tests/fuzz/corpus-$$(basename $$t); \
	  $$t -max_total_time=10 -max_len=65536 tests/fuzz/corpus-$$(basename $$t) tests/fuzz/seeds/$$(basename $$t) >/dev/null 2>&1 || { echo "fuzzer $$t found a crash"; exit 1; }; done

fuzz: $(FUZZ_TARGETS:%=build-fuzz/fuzz_%)
	@set -e; for t in $^; do echo "== $$t (5 min)"; mkdir -p tests/fuzz/corpus-$$(basename $$t); \
	  $$t -max_total_time=300 -max_len=65536 tests/fuzz/corpus-$$(basename $$t) tests/fuzz/seeds/$$(basename $$t); done

# deps first, then a fresh make: the build must see what deps has just installed.
demo: deps
	$(MAKE) all
	scripts/demo.sh

install: permafrost
	install -D -m 0755 permafrost $(DESTDIR)$(PREFIX)/bin/permafrost
	install -D -m 0644 docs/permafrost.1 $(DESTDIR)$(PREFIX)/share/man/man1/permafrost.1

format:
	clang-format -i $$(find src tests -name '*.[ch]')

clean:
	rm -rf build build-asan build-fuzz permafrost

.PHONY: all unit deps check asan-check fuzz fuzz-smoke demo install format clean
-include $(LIB_OBJ:.o=.d) $(BUILD)/src/main.d

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
