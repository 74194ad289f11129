# The two commands of README.md: `make run` and `make test`. Both install what
# is missing first (scripts/setup.sh), then build with cargo.
CARGO ?= cargo
DATA_DIR ?= ./data

.PHONY: setup build run test bench

setup:
	@bash scripts/setup.sh

build: setup
	$(CARGO) build --release --locked

run: build
	$(CARGO) run --release --locked -- serve --data-dir $(DATA_DIR)

test: setup
	$(CARGO) test --release --locked

bench: setup
	$(CARGO) bench --locked --bench rules
