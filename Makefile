# The README's commands. `make demo` installs only what the demo needs and runs the main job on the embedded
# default; `make test` adds the test extras (the PyTorch reference, notebooks, Inspect logs) and runs the suite.
PY ?= python3
PIP := $(PY) -m pip install --disable-pip-version-check -q
STAMP := .install-stamp
TEST_STAMP := .test-stamp

.PHONY: demo test bench install clean

$(STAMP): setup.py
	$(PIP) -e .
	touch $(STAMP)

$(TEST_STAMP): setup.py
	$(PIP) -e ".[test,inspect]"
	touch $(TEST_STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m monitor_jax.main assets fetch
	$(PY) -m monitor_jax.main demo

test: $(TEST_STAMP)
	$(PY) -m pytest -q tests

# Speed vs PyTorch/transformers on this machine (about 40 min on 2 cores; wants a quiet machine) -> bench/results.md.
bench: $(TEST_STAMP)
	$(PY) bench/features.py
	$(PY) bench/scoring.py --n_examples=128 --mix_repeats=2 --news_inputs=24
	$(PY) bench/scoring.py --n_examples=128 --mix_repeats=2 --matmul_dtype=bfloat16 --parts=fixed,mix --out=bench/results/scoring_bf16.md
	$(PY) bench/bf16_accuracy.py
	$(PY) bench/train_step.py --parts=torch,jax,topk --remat=none,dots
	$(PY) bench/generate.py
	$(PY) bench/summary.py

clean:
	rm -f $(STAMP) $(TEST_STAMP)
