# Two commands: `make run` and `make test`. Each sets the machine up first (idempotent, fast when done).
PY := .venv/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup run test bench clean

setup:
	@bash scripts/setup.sh

run: setup
	.venv/bin/somagent-voice serve --host $(HOST) --port $(PORT)

test: setup
	.venv/bin/ruff check .
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: setup
	$(PY) -m benchmarks

clean:
	rm -rf .venv data artifacts .pytest_cache
