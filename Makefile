# Entry points: `make run` (set-up, build, quickstart) and `make test` (set-up, build, ctest).
BUILD ?= build
JOBS ?= $(shell nproc)
WITH_TORCH ?= ON
CMAKE_ARGS ?=
# ccache hits across checkouts (CI clones) need paths relative to the project root.
export CCACHE_BASEDIR := $(CURDIR)

.PHONY: all bootstrap configure build test run clean format

all: build

bootstrap:
	@scripts/bootstrap

configure: bootstrap
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release -DHACM_WITH_TORCH=$(WITH_TORCH) \
	  -DCMAKE_PREFIX_PATH="$$(scripts/torch-prefix)" $(CMAKE_ARGS) >$(BUILD).configure.log 2>&1 \
	  || { cat $(BUILD).configure.log; exit 1; }

build: configure
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 1200

run: build
	$(BUILD)/repro/repro run protocols/quickstart.json

format:
	clang-format -i $$(git ls-files '*.h' '*.cpp' '*.cu' '*.cuh')

clean:
	rm -rf $(BUILD) $(BUILD).configure.log
