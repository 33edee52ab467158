# gsup's developer commands.  `make help` lists them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help install only-supervisor demo test lint stress storm transparency versions package bench server-envs atlas atlas-more atlas-check screenshots clean

help:  ## List the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml Makefile  # the recipe is part of the install
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# setuptools' note "Editable installation ... folders with the same name ... may take precedence" is
	# what only-supervisor settles (its .pth then names the package alone): silenced, and only that one.
	PYTHONWARNINGS='ignore:Editable installation' $(BIN)/python -m pip install --quiet -e '.[test,browser,containers,frameworks,celery]'
	$(MAKE) --no-print-directory only-supervisor
	$(BIN)/python -m compileall -q supervisor  # an editable install is not compiled, and PYTHONDONTWRITEBYTECODE may be set
	touch $(STAMP)

install: $(STAMP)  ## Create .venv/ and install gsup with its test extras (test, browser, containers, frameworks, celery)

# An editable install's .pth loads an import hook in every start-up of the venv (setuptools' default
# mode), or names the whole checkout (its deprecated compat mode, which warns), so that `import tests`
# or `import benchmark` anywhere would find gsup's own.  It names instead a directory holding one
# symlink, `supervisor`: the package alone, still editable (new modules show at once).
only-supervisor:
	mkdir -p $(VENV)/gsup-path
	ln -sfn $(CURDIR)/supervisor $(VENV)/gsup-path/supervisor
	for pth in $$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/__editable__.gsup-*.pth; do \
		echo $(CURDIR)/$(VENV)/gsup-path > $$pth; done

demo: $(STAMP)  ## Run the seed experiment: SIGKILL the Flask reloader's child, show the report
	PORT=5077 $(BIN)/gsup run --python $(BIN)/python --signal KILL --target child --grace 3s examples/flask_app.py

test: $(STAMP)  ## Run the whole test suite
	$(BIN)/python -m pytest -q

STRESS ?= --scenarios 200
stress: $(STAMP)  ## Random programs, signals and timing (200 runs, ~5 min): gsup must lose nothing
	$(BIN)/python tests/stress/stress.py $(STRESS) --jobs 2

storm: $(STAMP)  ## Fork storms under signal storms on 3.9-3.13 (20 runs, ~1 min): nothing lost or invented
	$(BIN)/python tests/stress/stress.py --storm --pythons --scenarios 20 --jobs 2

transparency: $(STAMP)  ## CPython's own tests plain and under gsup, per test case (FULL=1: more, DEEP=1: --deep)
	$(BIN)/python tests/transparency/transparency.py $(if $(FULL),--full) $(if $(DEEP),--deep)

server-envs: $(STAMP)  ## A venv per pyenv CPython 3.9-3.13 with the servers' pins in .venv-servers/ (once; then instant)
	$(BIN)/python tests/atlas/envs.py

atlas: server-envs  ## Real servers under each stop on each CPython (~12 min): writes docs/atlas.md
	$(BIN)/python tests/atlas/atlas.py

atlas-more: server-envs  ## Run each cell 3 more times per CPython and add outcomes docs/atlas.md lacks (a seldom race)
	$(BIN)/python tests/atlas/atlas.py --add

atlas-check: server-envs  ## Regenerate the atlas on each CPython and fail where behaviour differs from docs/atlas.md (CI)
	$(BIN)/python tests/atlas/atlas.py --check

lint: $(STAMP)  ## ruff and mypy --strict
	$(BIN)/ruff check supervisor tests
	$(BIN)/mypy

versions: $(STAMP)  ## gsup on each pyenv CPython 3.9-3.13: pip install . in .venv-versions/, a smoke run
	$(BIN)/python .ci/versions.py

package: $(STAMP)  ## Build sdist+wheel, twine check, install the wheel in a fresh venv, run the sdist's tests
	$(BIN)/python .ci/package.py

bench: $(STAMP)  ## Measure start-up, probe cost, idle CPU, latency, scale; writes docs/benchmarks.md
	$(BIN)/python -m compileall -q supervisor  # start-up figures must not include compiling a changed module
	$(BIN)/python -m benchmark

screenshots: $(STAMP)  ## Regenerate docs/timeline.png (the README's timeline) from a real run in headless Chromium
	$(BIN)/python .ci/screenshot.py

clean:  ## Remove the venv and caches
	rm -rf $(VENV) .venv-versions .venv-servers .pytest_cache .mypy_cache .ruff_cache *.egg-info
