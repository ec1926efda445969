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

# Speed vs PyTorch/transformers on this machine (about 40 min on 2 cores; wants a quiet machine) -> bench/results.md.
bench: $(STAMP)
	$(PY) bench/scoring.py --n_examples=128 --mix_repeats=2 --news_inputs=24
	$(PY) bench/train_step.py --parts=torch,jax,topk --remat=none,dots
	$(PY) bench/generate.py
	$(PY) bench/summary.py

clean:
	rm -f $(STAMP)
