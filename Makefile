# kmat: two commands do all the set-up on a fresh machine with Python 3.11:
#   make demo   create .venv, install, run zero-shot, description prototypes, CoOp and K-MaT on the phantom
#               world (one seed) with the shipped low-end descriptions and with half the classes' low-end
#               descriptions made generic, and print their Hi / Lo / H side by side
#   make test   create .venv, install, run the test suite
#   make test-fast  the suite without the tests that train a model or start a process (tests/support/tiers.py)
# Override the interpreter, the torch pins or the package index, e.g.
#   make test PYTHON=python3.12 TORCH_CONSTRAINTS=my-constraints.txt INDEX_URL=https://my.mirror/simple
PYTHON ?= python3.11
VENV ?= .venv
TORCH_CONSTRAINTS ?= constraints.txt
INDEX_URL ?=
EXTRAS ?= dev
PYTEST_ARGS ?=
# test processes for make test / test-fast (pytest-xdist): auto = one per core; 0 runs the tests in one process.
# Each test file runs whole in one process (--dist loadfile in pyproject.toml).
TEST_WORKERS ?= auto
PYTEST = $(BIN)/python -m pytest -q -n $(TEST_WORKERS)

# Byte-compiled caches make every `kmat` process start 3x faster (torch and open_clip import in 5 s, not 17 s;
# `kmat list` in 0.3 s of CPU, not 0.6 s). `make install` writes them for everything a kmat process imports at
# start-up, so they are there even for users whose shell sets PYTHONDONTWRITEBYTECODE (as many container images do).
unexport PYTHONDONTWRITEBYTECODE

BIN := $(VENV)/bin
UV_INDEX := $(if $(INDEX_URL),--index-url $(INDEX_URL),)
STAMP := $(VENV)/.kmat-installed

.PHONY: install demo test test-fast test-slow lint bench bench-full bench-transport phantom-backbone clean

install: $(STAMP)

$(STAMP): pyproject.toml setup.py $(TORCH_CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --python $(BIN)/python $(UV_INDEX) -e '.[$(EXTRAS)]' -c $(TORCH_CONSTRAINTS)
	$(BIN)/python -c "import kmat_cli.app, kmat_cli.commands, torch, open_clip, ot" && $(BIN)/kmat list > /dev/null
	touch $(STAMP)

DEMO_OUT ?= runs/demo
DEMO_FLAGS ?=
demo: $(STAMP)
	@$(BIN)/kmat benchmark --task phantom --methods zeroshot,descriptions,coop,kmat --seeds 1 --no-plots --summary \
		--vary knowledge.regime=shipped,partial --jobs 2 --out $(DEMO_OUT) $(DEMO_FLAGS)
	@echo "Full 3-seed reports: docs/benchmark-phantom/report.md (methods, K-MaT ablation), docs/benchmark-knowledge/report.md (knowledge regimes)"
	@echo "kmat is installed in $(VENV): run 'source $(BIN)/activate' to call kmat in this shell (or call $(BIN)/kmat)."
	@echo "Next: kmat data sample --out scans/ && kmat train --task phantom --epochs 5 && kmat predict scans/"

test: $(STAMP)
	$(PYTEST) $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PYTEST) --fast $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(PYTEST) -m slow $(PYTEST_ARGS)

# ruff, then mypy over kmat/ and kmat_cli/ ([tool.mypy] in pyproject.toml)
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Speed benchmark (benchmarks/speed.py): quick mode, < 3 minutes on 2 cores; bench-full: more repetitions and
# the real 50-epoch training run (the numbers of benchmarks/README.md).
bench: $(STAMP)
	$(BIN)/python benchmarks/speed.py --quick

bench-full: $(STAMP)
	$(BIN)/python benchmarks/speed.py

bench-transport: $(STAMP)
	$(BIN)/python benchmarks/transport_speed.py

phantom-backbone: $(STAMP)
	$(BIN)/python -m kmat.backbones.phantom.pretrain

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
