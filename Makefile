# Both targets create .venv when it is missing and (re)install the project when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo experiment test lint clean-demo system-deps wheelhouse

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# An editable install leaves out the start-up hook that lets `import basicsr` work without sr_iqa (setup.py):
# copied beside the packages here.
HOOK := sr_iqa_basicsr_compat.pth
COPY_HOOK = $(BIN)/python -c "import shutil, sysconfig; shutil.copy('$(HOOK)', sysconfig.get_paths()['purelib'])"

# One TensorBoard: basicsr requires tb-nightly and pyiqa requires tensorboard, two distributions of the same files
# that TensorBoard refuses to start with ("Duplicate plugins"); `tensorboard` is removed and tb-nightly's files put
# back (it needs pkg_resources: setuptools<82 in pyproject.toml). `tensorboard --logdir experiments` is tested.
ONE_TENSORBOARD = if $(BIN)/python -m pip show -q tensorboard 2>/dev/null; then \
	$(BIN)/python -m pip uninstall -q -y tensorboard && $(BIN)/python -m pip install -q --pre --no-deps --force-reinstall tb-nightly; fi

$(VENV)/.installed: pyproject.toml setup.py $(HOOK) | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	$(COPY_HOOK)
	$(ONE_TENSORBOARD)
	touch $@

$(VENV)/.installed-test: pyproject.toml setup.py $(HOOK) | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	$(COPY_HOOK)
	$(ONE_TENSORBOARD)
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/sr-iqa demo

# The paper's orderings measured (experiments/RESULTS.md): PRESET=cpu (45 minutes on 2 cores), gpu or tiny.
PRESET ?= cpu
experiment: $(VENV)/.installed
	$(BIN)/sr-iqa experiment --preset $(PRESET)

# The HTML-report test opens the report in headless Chromium: Debian's package, installed when missing.
system-deps:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null 2>&1; then SUDO=sudo; else \
	    echo "make test needs Debian's chromium package: apt-get install chromium (as root)"; exit 1; fi; \
	  $$SUDO apt-get update -q && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

# Two pytest workers, one test file each at a time (module fixtures stay in one process), each torch on one thread:
# in-process tests of one worker overlap the subprocess launches of the other (5.0 min instead of 7.1 here).
test: $(VENV)/.installed-test system-deps
	$(BIN)/ruff check sr_iqa tests benchmarks setup.py
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 --dist loadfile

# The wheels the GPU machine's image lacks (benchmarks/wheelhouse.py), to carry there with the working tree:
# benchmarks/gpu_check.sh installs them with pip --no-index.
wheelhouse: $(VENV)/.installed
	$(BIN)/python benchmarks/wheelhouse.py --out wheelhouse

lint: $(VENV)/.installed-test
	$(BIN)/ruff check sr_iqa tests benchmarks setup.py

clean-demo:
	rm -rf datasets/demo experiments/demo experiments/demo_ft experiments/demo_rrdb_x4 experiments/ablation_demo
