# The habits. `make run` gives a newcomer Wren in an editor; `make test` runs everything.
.PHONY: setup run test test-python test-client e2e-setup lint format bench eval-data clean

VPY := .venv/bin/python

setup:
	bash scripts/setup.sh

run: setup
	bash scripts/run_editor.sh

client: 
	cd client-vscode && npm ci --no-audit --no-fund && npm run package

test: setup
	bash scripts/test.sh

lint:
	$(VPY) -m ruff check server tests scripts
	$(VPY) -m ruff format --check server tests scripts
	$(VPY) -m mypy
	.venv/bin/lint-imports --no-cache
	cd client-vscode && npm run lint

format:
	$(VPY) -m ruff format server tests scripts
	$(VPY) -m ruff check --fix server tests scripts

eval-data:
	bash scripts/eval_data.sh

bench: setup
	$(VPY) scripts/bench_latency.py

clean:
	rm -rf .venv client-vscode/node_modules client-vscode/dist artifacts .tools
