# mcp-bridge — the two commands a newcomer needs are `make run` and `make test`.
CARGO ?= cargo
INTEROP := tests/interop/install.sh
INFRA := tests/infra/install.sh

.PHONY: all build run demo test unit fuzz interop-deps infra-deps lint fmt bench clean

all: build

build:
	$(CARGO) build --release

## The one-command demo: a legacy SSE server, the bridge in front of it, and a Streamable
## HTTP client printing progress and log notifications live as they cross the bridge.
## `make run REVERSE=1` shows the other direction.
run demo:
	$(CARGO) run --release --example demo -- $(if $(REVERSE),--reverse,)

## Every test: unit, in-process integration (fake peers) and interop with the real SDK
## peers, which are installed first (pinned) into .interop/, and the replica tests against
## a real redis-server and haproxy (pinned Debian packages, installed first when missing).
test: interop-deps infra-deps
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
	  $(CARGO) nextest run --workspace --all-targets --no-fail-fast; \
	else \
	  $(CARGO) test --workspace --all-targets --no-fail-fast; \
	fi

## Only the fast tests (no real SDK peers).
unit:
	$(CARGO) test --workspace --all-targets -- --skip interop

## The front-door fuzz harness (src/fuzz.rs; stable Rust, seeded, no extra crate). `make
## test` runs it briefly with a fixed seed; this runs it longer:
## `make fuzz FUZZ_ITERATIONS=5000000 FUZZ_SEED=42` (iterations per target).
FUZZ_ITERATIONS ?= 1000000
FUZZ_SEED ?= 1
fuzz:
	FUZZ_ITERATIONS=$(FUZZ_ITERATIONS) FUZZ_SEED=$(FUZZ_SEED) \
	  $(CARGO) test --lib fuzz:: -- --nocapture

interop-deps:
	bash $(INTEROP)

infra-deps:
	bash $(INFRA)

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

bench: infra-deps
	bash bench/run.sh

clean:
	$(CARGO) clean
	rm -rf .interop bench-results
