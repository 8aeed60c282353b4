# airouter: the one build entry. `make` builds, `make run` starts it on the default
# config, `make test` runs every test, `make bench` runs the benchmark, `make ab` what a
# request costs the workers, `make install` (PREFIX, DESTDIR) installs it, `make deb` builds a Debian package, `make deb-test`
# installs that package into a scratch root and answers a request with it. `make capacity`
# measures how many concurrent streams the workers hold and what each costs; `make fuzz` runs
# the fuzz targets and `make soak` the soak benchmark.
CC      ?= cc
VERSION := 0.1.0
PKGS    := libmicrohttpd libcurl json-c libconfig grpc libprotobuf-c hiredis
# pkg-config runs once, when a recipe first needs its answer (grpc's takes a second): targets
# that compile nothing (install, uninstall) do not pay for it.
lazy = $(eval $1 := $(shell $2))$($1)
PKG_CFLAGS = $(call lazy,PKG_CFLAGS,pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(call lazy,PKG_LIBS,pkg-config --libs $(PKGS) 2>/dev/null)

# grpc's C headers carry no version: -V takes the one built against from pkg-config.
GRPC_VERSION = $(call lazy,GRPC_VERSION,pkg-config --modversion grpc 2>/dev/null)
CFLAGS  = -D_GNU_SOURCE -std=gnu11 -O2 -g -Wall -Wextra -Werror -pthread -DAIROUTER_VERSION='"$(VERSION)"' \
           -DAIROUTER_GRPC_BUILD_VERSION='"$(GRPC_VERSION)"' $(PKG_CFLAGS) -I. -Ibuild/gen
LDLIBS  = $(PKG_LIBS) -pthread -lm
# The release binary allocates with jemalloc: glibc's malloc spent a fifth of a stream's CPU time
# consolidating the small blocks each request frees (make bench). The sanitizer builds keep
# glibc's, which ASan replaces anyway.
MALLOC_LIBS = $(call lazy,MALLOC_LIBS,pkg-config --libs jemalloc 2>/dev/null)
MALLOC_CFLAGS = $(if $(MALLOC_LIBS),-DAIROUTER_JEMALLOC)
SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

COMMON_SRC := $(wildcard common/*.c)
PROTOS     := $(wildcard proto/*.proto)
PROTO_SRC  := $(PROTOS:proto/%.proto=build/gen/%.pb-c.c)
PROTO_HDR  := $(PROTO_SRC:.c=.h)
# The descriptors that gRPC server reflection answers with, embedded into the binary.
REFLECTED  := proto/ai_router.proto proto/reflection.proto build/gen/reflection_v1alpha.proto
DESC_SRC   := build/gen/descriptor_set.c
SRC        := $(COMMON_SRC) $(wildcard master/*.c) $(wildcard worker/*.c worker/*/*.c) $(PROTO_SRC) $(DESC_SRC)
HDR        := $(wildcard common/*.h master/*.h worker/*.h worker/*/*.h) $(PROTO_HDR)
UNIT_SRC   := $(wildcard tests/unit/test_*.c)
UNIT_DEPS  := $(COMMON_SRC) worker/core/route.c worker/oai/oai_shape.c worker/oai/anthropic_shape.c worker/oai/validate.c worker/oai/usage.c \
              worker/oai/multipart.c worker/grpc/grpc_reflection.c build/gen/reflection.pb-c.c $(DESC_SRC)

OBJ      := $(SRC:%.c=build/release/%.o)
OBJ_ASAN := $(SRC:%.c=build/asan/%.o)

# C for the .proto files is generated at build time, never committed.
build/gen/%.pb-c.c build/gen/%.pb-c.h: proto/%.proto
	@mkdir -p build/gen
	protoc-c --proto_path=proto --c_out=build/gen $<

# grpc.reflection.v1alpha has the same messages as v1 under another package name: its descriptor
# comes from the one reflection.proto.
build/gen/reflection_v1alpha.proto: proto/reflection.proto
	@mkdir -p build/gen
	sed 's/^package grpc\.reflection\.v1;/package grpc.reflection.v1alpha;/' $< > $@.tmp
	grep -q '^package grpc\.reflection\.v1alpha;' $@.tmp
	mv $@.tmp $@

# A google.protobuf.FileDescriptorSet of the served files, as a C byte array.
build/gen/descriptor_set.pb: $(REFLECTED)
	protoc-c --proto_path=proto --proto_path=build/gen --include_imports --descriptor_set_out=$@ $(notdir $(REFLECTED))

$(DESC_SRC): build/gen/descriptor_set.pb
	{ echo '/* Generated from $< at build time. */'; \
	  echo '#include <stddef.h>'; \
	  echo 'const unsigned char reflection_descriptor_set[] = {'; \
	  od -An -v -tx1 $< | sed 's/\([0-9a-f][0-9a-f]\)/0x\1,/g'; \
	  echo '};'; \
	  echo 'const size_t reflection_descriptor_set_len = sizeof reflection_descriptor_set;'; } > $@.tmp
	mv $@.tmp $@

.PHONY: all asan deps run test unit e2e bench ab bench-cluster capacity fuzz fuzz-build soak clean install uninstall deb deb-test
all: airouter

build/release/%.o: %.c $(HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(MALLOC_CFLAGS) -c -o $@ $<

build/asan/%.o: %.c $(HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SAN) -O1 -c -o $@ $<

airouter: $(OBJ)
	$(CC) -o $@ $^ $(LDLIBS) $(MALLOC_LIBS)

airouter-asan: $(OBJ_ASAN)
	$(CC) $(SAN) -o $@ $^ $(LDLIBS)

asan: airouter-asan

# The rest of the ASan objects, as an archive: a unit test that includes a module's source to
# reach its static functions links in place of that module's object.
UNIT_LIB_OBJ := $(filter-out build/asan/master/main.o $(UNIT_DEPS:%.c=build/asan/%.o),$(OBJ_ASAN))

build/asan/libunit.a: $(UNIT_LIB_OBJ)
	rm -f $@
	ar rcs $@ $^

build/unit-tests: $(UNIT_SRC) $(UNIT_DEPS) $(wildcard tests/unit/*.h) $(HDR) build/asan/libunit.a
	@mkdir -p build
	$(CC) $(CFLAGS) $(SAN) -O1 -o $@ $(UNIT_SRC) $(UNIT_DEPS) build/asan/libunit.a $(LDLIBS)

deps:
	@scripts/install-deps.sh

run: deps
	@$(MAKE) --no-print-directory airouter
	./airouter -c etc/airouter.conf

unit: build/unit-tests
	scripts/check-layers.sh
	cd tests/unit && ../../build/unit-tests

e2e: airouter airouter-asan
	scripts/run-e2e.sh

test: deps
	@$(MAKE) --no-print-directory airouter airouter-asan build/unit-tests
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory e2e

BENCH_TOOLS := build/bench/benchmock build/bench/ttfb build/bench/streamload build/bench/switchcost

build/bench/%: scripts/%.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -Wall -Wextra -Werror -pthread -o $@ $<

bench: deps
	@$(MAKE) --no-print-directory airouter $(BENCH_TOOLS)
	scripts/bench.sh

# CPU µs, context switches and system calls per request of the workers (AB_BINS: binaries to
# compare, back to back; default ./airouter).
ab:
	@$(MAKE) --no-print-directory airouter $(BENCH_TOOLS)
	scripts/ab.sh $(AB_BINS)

capacity:
	@$(MAKE) --no-print-directory airouter $(BENCH_TOOLS)
	scripts/capacity.sh

# What shared limits in Redis add per request, against limits in shared memory.
bench-cluster: deps
	@$(MAKE) --no-print-directory airouter
	scripts/bench-cluster.sh

# Installation. The configuration lives in $(SYSCONFDIR)/airouter whatever the PREFIX: the
# binary's default -c and the unit look there. An existing airouter.conf is never replaced.
PREFIX     ?= /usr/local
SBINDIR    ?= $(PREFIX)/sbin
MANDIR     ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
UNITDIR    ?= $(PREFIX)/lib/systemd/system
CONFDIR    := $(SYSCONFDIR)/airouter
PIDFILE    := /run/airouter/airouter.pid
EXAMPLES   := $(notdir $(wildcard etc/examples/*.conf))
INSTALL_GEN := build/install/airouter.conf build/install/airouter.service build/install/airouter.logrotate

# The shipped files with the installed paths filled in (the source tree's own are for running
# from it).
build/install/airouter.conf: etc/airouter.conf
	@mkdir -p $(dir $@)
	sed 's|^pidfile = "airouter.pid";|pidfile = "$(PIDFILE)";|' $< > $@
build/install/airouter.service: etc/airouter.service
	@mkdir -p $(dir $@)
	sed 's|/usr/local/sbin/airouter|$(SBINDIR)/airouter|g; s|/etc/airouter/|$(CONFDIR)/|g; s|/run/airouter/airouter.pid|$(PIDFILE)|g' $< > $@
build/install/airouter.logrotate: etc/airouter.logrotate
	@mkdir -p $(dir $@)
	sed 's|/usr/local/sbin/airouter|$(SBINDIR)/airouter|g; s|/run/airouter/airouter.pid|$(PIDFILE)|g' $< > $@
.PHONY: $(INSTALL_GEN) # the paths come from the command line: always regenerate

install: airouter $(INSTALL_GEN)
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(UNITDIR) \
	    $(DESTDIR)$(CONFDIR)/examples $(DESTDIR)$(SYSCONFDIR)/logrotate.d
	install -m 0755 airouter $(DESTDIR)$(SBINDIR)/airouter
	install -m 0644 man/airouter.8 $(DESTDIR)$(MANDIR)/man8/airouter.8
	install -m 0644 man/airouter.conf.5 $(DESTDIR)$(MANDIR)/man5/airouter.conf.5
	install -m 0644 build/install/airouter.service $(DESTDIR)$(UNITDIR)/airouter.service
	install -m 0644 build/install/airouter.logrotate $(DESTDIR)$(SYSCONFDIR)/logrotate.d/airouter
	install -m 0644 $(addprefix etc/examples/,$(EXAMPLES)) $(DESTDIR)$(CONFDIR)/examples/
	@if [ -e $(DESTDIR)$(CONFDIR)/airouter.conf ]; then \
	    echo "install: keeping the existing $(DESTDIR)$(CONFDIR)/airouter.conf"; \
	else install -m 0644 build/install/airouter.conf $(DESTDIR)$(CONFDIR)/airouter.conf; fi
	@[ -n "$(DESTDIR)" ] || id airouter >/dev/null 2>&1 || echo "install: the systemd unit runs as user" \
	    "airouter: useradd --system --no-create-home --shell /usr/sbin/nologin airouter"

# Removes what install put there: a configuration that differs from the shipped one stays, and
# so does anything else in the directories.
uninstall: build/install/airouter.conf
	rm -f $(DESTDIR)$(SBINDIR)/airouter $(DESTDIR)$(MANDIR)/man8/airouter.8 $(DESTDIR)$(MANDIR)/man5/airouter.conf.5 \
	    $(DESTDIR)$(UNITDIR)/airouter.service $(DESTDIR)$(SYSCONFDIR)/logrotate.d/airouter \
	    $(addprefix $(DESTDIR)$(CONFDIR)/examples/,$(EXAMPLES))
	@if cmp -s build/install/airouter.conf $(DESTDIR)$(CONFDIR)/airouter.conf; then \
	    rm -f $(DESTDIR)$(CONFDIR)/airouter.conf; \
	elif [ -e $(DESTDIR)$(CONFDIR)/airouter.conf ]; then \
	    echo "uninstall: keeping $(DESTDIR)$(CONFDIR)/airouter.conf (changed since install)"; fi
	-rmdir $(DESTDIR)$(CONFDIR)/examples $(DESTDIR)$(CONFDIR) 2>/dev/null

# The Debian package: built from a staged `make install` with dpkg-deb, no network.
DEB_ARCH = $(call lazy,DEB_ARCH,dpkg --print-architecture 2>/dev/null)
DEB      := build/airouter_$(VERSION)_$(DEB_ARCH).deb

deb: airouter
	rm -rf build/deb
	$(MAKE) --no-print-directory install DESTDIR=$(CURDIR)/build/deb/root PREFIX=/usr UNITDIR=/lib/systemd/system
	scripts/make-deb.sh build/deb/root $(VERSION) $(DEB_ARCH) $(DEB)

deb-test: deb
	@[ -e tests/node_modules ] || $(MAKE) --no-print-directory deps
	AIROUTER_DEB=$(CURDIR)/$(DEB) node --test --test-concurrency=1 tests/e2e/install.test.js

# libFuzzer targets, one per parser of outside input (tests/fuzz/fuzz_*.c); not part of
# `make test`. Every source is built with coverage instrumentation into one archive, so a
# target links only what it calls (a target that includes a .c to reach its static parser
# takes that file's place in the link).
FUZZ_CC      ?= clang
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS   = $(filter-out -O2,$(CFLAGS)) -O1 $(FUZZ_SAN)
FUZZ_SRC     := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_TARGETS := $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)
FUZZ_LIB_SRC := $(filter-out master/main.c,$(SRC))
FUZZ_OBJ     := $(FUZZ_LIB_SRC:%.c=build/fuzz/obj/%.o)
FUZZ_SECONDS ?= 60

build/fuzz/obj/%.o: %.c $(HDR)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

build/fuzz/libairouter.a: $(FUZZ_OBJ)
	rm -f $@
	ar rcs $@ $^

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h build/fuzz/libairouter.a $(HDR)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< build/fuzz/libairouter.a $(LDLIBS)

fuzz-build: $(FUZZ_TARGETS)

# Runs every target for its share of FUZZ_SECONDS from its seed corpus (tests/fuzz/corpus/NAME);
# new inputs go to build/fuzz/corpus/NAME, crashes to build/fuzz/crashes/.
fuzz:
	@command -v $(FUZZ_CC) >/dev/null && [ -n "$$($(FUZZ_CC) -print-file-name=libclang_rt.fuzzer-x86_64.a | grep /)" ] \
		|| scripts/install-deps.sh --fuzz
	@$(MAKE) --no-print-directory fuzz-build
	FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh $(FUZZ_TARGETS)

# Soak benchmark: mixed load and reloads for SOAK_SECONDS, the RSS growth per minute of the master
# and of every worker (scripts/soak.js). Not part of `make test`.
soak: deps
	@$(MAKE) --no-print-directory airouter
	node scripts/soak.js

clean:
	rm -rf build airouter airouter-asan
