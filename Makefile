# Two commands are all a new user needs:
#   make demo   trains and evaluates the full experiment on the built-in demo database
#               (more settings: make demo DEMO_ARGS='model_config.precision=mixed seed=3')
#   make test   runs the test suite
# Both create .venv and install requirements.txt the first time (or when it changes), and make
# sure ffmpeg is installed (tools/ensure-ffmpeg.sh: installs it as root, else says how).

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed

.PHONY: demo test lint bench bench-semisup venv ffmpeg clean

venv: $(STAMP)

ffmpeg:
	@sh tools/ensure-ffmpeg.sh

$(STAMP): requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || \
	  { echo "Python 3.10 or newer is needed (found: $$($(PYTHON) --version))"; exit 1; }
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --upgrade --quiet pip
	$(VPY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

demo: $(STAMP) ffmpeg
	$(VPY) Training.py with demo $(DEMO_ARGS)

test: $(STAMP) ffmpeg lint
	$(VPY) -m pytest -q tests

lint: $(STAMP)
	$(VPY) -m ruff format --check .
	$(VPY) -m ruff check .

bench: $(STAMP) ffmpeg
	$(VPY) bench/input_pipeline.py
	$(VPY) bench/train_step.py
	$(VPY) bench/precision.py
	$(VPY) bench/separate.py

bench-semisup: $(STAMP) ffmpeg
	$(VPY) bench/semisup_gain.py

clean:
	rm -rf $(VENV) .pytest_cache
