# tertulia: the two commands that matter are `make run` and `make test`.
# Both install what is missing and build first: `make run` only what building
# and running the server need (scripts/deps.sh --run), `make test` the test
# tools too (scripts/deps.sh --test, from scripts/test.sh).
BUILD ?= build
PREFIX ?= /usr/local

.PHONY: all deps build run test install package fuzz bench bench-quick valgrind conformance clean format

all: build

deps:
	bash scripts/deps.sh --run

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j$$(nproc)

# Runs the server on its defaults (http://127.0.0.1:9090/; its log ends with
# the address to open). Options: make run ARGS="--listen 0.0.0.0:9090", or
# ARGS="--config tertulia.conf", or TERTULIA_<OPTION> variables.
run: build
	./$(BUILD)/tertulia $(ARGS)

# Every test: unit, integration, browser, the same under ASan+UBSan, fuzzers.
test:
	bash scripts/test.sh

# Installs under PREFIX (default /usr/local), into DESTDIR if given: the
# binary, tertulia(8), and with PREFIX=/usr the systemd unit and
# /etc/tertulia/tertulia.conf (elsewhere both as examples in
# share/doc/tertulia/examples). make install PREFIX=/usr DESTDIR=/tmp/root
install: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=$(PREFIX) >/dev/null
	cmake --build $(BUILD) -j$$(nproc)
	DESTDIR='$(DESTDIR)' cmake --install $(BUILD)

# The Debian package (debian/, dpkg-buildpackage), built from a copy of the
# tree in build/package/ and checked with lintian; the .deb lands there.
# Needs the packaging tools (debhelper, lintian: scripts/deps.sh --test).
package:
	bash scripts/deps.sh --test
	bash scripts/package.sh

fuzz:
	bash scripts/fuzz.sh $(or $(SECONDS),60)

bench:
	bash bench/run.sh $(BENCH_ARGS)

# A two-minute smoke run of the benchmarks (results in bench/results/, no report).
bench-quick:
	bash bench/run.sh --quick $(BENCH_ARGS)

valgrind: build
	bash scripts/valgrind.sh

# The Autobahn|Testsuite fuzzingclient against /echo (docs/CONFORMANCE.md: the
# suite must be prepared first; exits 2 if it is not). CASES='1.*,2.*' for a part.
conformance:
	CASES='$(CASES)' bash scripts/conformance.sh

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan build-fuzz build-logs
