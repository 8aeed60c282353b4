# airouter: the one build entry. `make` builds, `make run` starts it on the default
# config, `make test` runs every test, `make bench` runs the benchmark.
CC      ?= cc
VERSION := 0.1.0
PKGS    := libmicrohttpd libcurl json-c libconfig grpc libprotobuf-c
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CFLAGS  := -D_GNU_SOURCE -std=gnu11 -O2 -g -Wall -Wextra -Werror -pthread -DAIROUTER_VERSION='"$(VERSION)"' $(PKG_CFLAGS) -Ibuild/gen
LDLIBS  := $(PKG_LIBS) -pthread -lm
# The release binary allocates with jemalloc: glibc's malloc spent a fifth of a stream's CPU time
# consolidating the small blocks each request frees (make bench). The sanitizer builds keep
# glibc's, which ASan replaces anyway.
MALLOC_LIBS := $(shell pkg-config --libs jemalloc 2>/dev/null)
SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

COMMON_SRC := $(wildcard common/*.c)
PROTOS     := $(wildcard proto/*.proto)
PROTO_SRC  := $(PROTOS:proto/%.proto=build/gen/%.pb-c.c)
PROTO_HDR  := $(PROTO_SRC:.c=.h)
# The descriptors that gRPC server reflection answers with, embedded into the binary.
REFLECTED  := proto/ai_router.proto proto/reflection.proto build/gen/reflection_v1alpha.proto
DESC_SRC   := build/gen/descriptor_set.c
SRC        := $(COMMON_SRC) $(wildcard master/*.c) $(wildcard worker/*.c) $(PROTO_SRC) $(DESC_SRC)
HDR        := $(wildcard common/*.h master/*.h worker/*.h) $(PROTO_HDR)
UNIT_SRC   := $(wildcard tests/unit/test_*.c)
UNIT_DEPS  := $(COMMON_SRC) worker/route.c worker/oai_shape.c worker/validate.c worker/grpc_reflection.c \
              build/gen/reflection.pb-c.c $(DESC_SRC)

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

.PHONY: all asan deps run test unit e2e bench clean
all: airouter

build/release/%.o: %.c $(HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

build/asan/%.o: %.c $(HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SAN) -O1 -c -o $@ $<

airouter: $(OBJ)
	$(CC) -o $@ $^ $(LDLIBS) $(MALLOC_LIBS)

airouter-asan: $(OBJ_ASAN)
	$(CC) $(SAN) -o $@ $^ $(LDLIBS)

asan: airouter-asan

build/unit-tests: $(UNIT_SRC) $(UNIT_DEPS) tests/unit/unit.h $(HDR)
	@mkdir -p build
	$(CC) $(CFLAGS) $(SAN) -O1 -o $@ $(UNIT_SRC) $(UNIT_DEPS) $(LDLIBS)

deps:
	@scripts/install-deps.sh

run: deps
	@$(MAKE) --no-print-directory airouter
	./airouter -c etc/airouter.conf

unit: build/unit-tests
	cd tests/unit && ../../build/unit-tests

e2e: airouter airouter-asan
	scripts/run-e2e.sh

test: deps
	@$(MAKE) --no-print-directory airouter airouter-asan build/unit-tests
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory e2e

BENCH_TOOLS := build/bench/benchmock build/bench/ttfb

build/bench/%: scripts/%.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -Wall -Wextra -Werror -pthread -o $@ $<

bench: deps
	@$(MAKE) --no-print-directory airouter $(BENCH_TOOLS)
	scripts/bench.sh

clean:
	rm -rf build airouter airouter-asan
