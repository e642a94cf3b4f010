# bzzz: the two entry points of README.md are `make run` and `make test`.
# Every target installs what it needs first (scripts/setup.sh is idempotent).

BUILD ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= $(shell nproc)
ARGS ?=
CMAKE_EXTRA ?=

.PHONY: all setup configure build run test test-asan test-tsan bench bench-tasks fuzz clean

all: build

setup:
	bash scripts/setup.sh

configure: setup
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_EXTRA)

build: configure
	cmake --build $(BUILD) -j $(JOBS)

# The embedded default: a complete single-node system in ./data on 127.0.0.1:8080.
run: build
	./$(BUILD)/bin/bzzz serve $(ARGS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j 2

# The suite under AddressSanitizer and UndefinedBehaviorSanitizer.
test-asan:
	$(MAKE) test BUILD=build-asan BUILD_TYPE=Debug CMAKE_EXTRA=-DBZZZ_SANITIZE=ON

# The suite under ThreadSanitizer.
# Races inside uninstrumented libraries (OpenDHT, spdlog) are suppressed: scripts/tsan.supp.
test-tsan:
	TSAN_OPTIONS="suppressions=$(CURDIR)/scripts/tsan.supp" \
	  $(MAKE) test BUILD=build-tsan BUILD_TYPE=RelWithDebInfo CMAKE_EXTRA=-DBZZZ_TSAN=ON

bench: build
	bash bench/http/run.sh
	bash bench/p2p/run.sh
	bash bench/election/run.sh
	bash bench/tasks/run.sh
	bash bench/ucxl/run.sh

# No-op tasks end to end, bzzz (1 and 3 nodes) against BullMQ + Redis.
bench-tasks: build
	bash bench/tasks/run.sh

# libFuzzer targets (installs clang); FUZZ_SECONDS per target, default 60.
fuzz:
	bash scripts/fuzz.sh

clean:
	rm -rf $(BUILD)
