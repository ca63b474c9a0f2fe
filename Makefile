# The two commands of the README. Each sets everything up first (scripts/setup.sh is idempotent).
.PHONY: demo test setup lint bench-ingest

demo: setup
	.venv/bin/kgrec demo

test: setup
	.venv/bin/python -m pytest

setup:
	@bash scripts/setup.sh

lint: setup
	.venv/bin/ruff check kg gnn ingest tests bench

bench-ingest: setup
	.venv/bin/python bench/bench_ingest.py
