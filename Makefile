# The two commands of README.md: `make run` and `make test`. Both install what
# is missing first (scripts/setup.sh), build the web console (scripts/setup-web.sh:
# npm ci + Vite into web/dist) and then build with cargo.
CARGO ?= cargo
DATA_DIR ?= ./data

.PHONY: setup web build run test bench

setup:
	@bash scripts/setup.sh

web:
	@bash scripts/setup-web.sh

build: setup web
	$(CARGO) build --release --locked

run: build
	$(CARGO) run --release --locked -- serve --data-dir $(DATA_DIR)

# The end-to-end tests send traces with the OpenTelemetry Python SDK, from a
# venv that scripts/setup-python.sh keeps in $(FLUO_PY_VENV).
FLUO_PY_VENV ?= $(HOME)/.cache/fluo-venv
export FLUO_PY_VENV

# The browser tests (tests/browser.rs) drive Debian's chromium, which
# `scripts/setup.sh test` installs.
test: web
	@bash scripts/setup.sh test
	@bash scripts/setup-python.sh >/dev/null
	$(CARGO) test --release --locked
	# The benchmarks are not run here, but they must keep compiling.
	$(CARGO) build --release --locked --benches

bench: setup
	$(CARGO) bench --locked --bench rules
	$(CARGO) bench --locked --bench ingest
	$(CARGO) bench --locked --bench windows
	$(CARGO) bench --locked --bench inbox
	$(CARGO) bench --locked --bench startup
	$(CARGO) bench --locked --bench e2e
