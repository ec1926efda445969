# The README's commands. `make demo` installs only what the demo needs and runs the main job on the embedded
# default; `make test` adds the test extras (the PyTorch reference, notebooks, Inspect logs) and runs the suite.
PY ?= python3
PIP := $(PY) -m pip install --disable-pip-version-check -q
STAMP := .install-stamp
TEST_STAMP := .test-stamp

.PHONY: demo test bench bench-arm install clean

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

# Speed vs PyTorch/transformers on this machine (about 45 min on 2 cores; wants a quiet machine) -> bench/results.md.
bench: $(TEST_STAMP)
	$(PY) bench/features.py
	XLA_FLAGS=--xla_cpu_use_xnnpack=true $(PY) bench/features.py --precisions=float32 --bucket_sets=default --out=bench/results/features_xnnpack.md
	$(PY) bench/scoring.py --n_examples=128 --mix_repeats=2 --news_inputs=24
	$(PY) bench/scoring.py --n_examples=128 --mix_repeats=2 --matmul_dtype=bfloat16 --parts=fixed,mix --fine_buckets=0 --pack=0 --out=bench/results/scoring_bf16.md
	$(PY) bench/bf16_accuracy.py --per_task=96
	$(PY) bench/train_step.py --parts=torch,jax,topk --remat=none,dots --levers=xnnpack --repeats=3
	$(PY) bench/generate.py --repeats=3
	$(PY) bench/summary.py

# The wall time of one standard arm, cold and warm feature store (about 45 min) -> bench/results/arm.md; then the summary.
bench-arm: $(TEST_STAMP)
	$(PY) bench/arm.py
	$(PY) bench/summary.py

clean:
	rm -f $(STAMP) $(TEST_STAMP)
