.PHONY: setup run test lint bench

setup:          ## create .venv and install everything
	scripts/setup

run:            ## set up and start the twin on embedded defaults
	scripts/run

test:           ## set up and run the whole test suite
	scripts/test

lint:
	. .venv/bin/activate && ruff check .

bench:          ## the benchmarks recorded in docs/benchmarks.md
	. .venv/bin/activate && twin bench retrieval --data ../shared/data/locomo/locomo10.json --results docs/bench-results.jsonl
	. .venv/bin/activate && twin bench scale --n 100000 --results docs/bench-results.jsonl
	. .venv/bin/activate && twin bench pipeline --n 100000 --results docs/bench-results.jsonl
