# The README's commands. `make demo` runs the main job on the embedded default; `make test` runs the suite.
PY ?= python3
STAMP := .install-stamp

.PHONY: demo test bench install clean

$(STAMP): setup.py
	$(PY) -m pip install --disable-pip-version-check -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m monitor_jax.main assets fetch
	$(PY) -m monitor_jax.main demo

test: $(STAMP)
	$(PY) -m pytest -q tests

clean:
	rm -f $(STAMP)
