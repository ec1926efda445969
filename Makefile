# The README's commands. `make demo` installs only what the demo needs and runs the main job on the embedded
# default; `make test` adds the test extras (the PyTorch reference, notebooks, Inspect logs) and runs the suite.
PY ?= python3
PIP := $(PY) -m pip install --disable-pip-version-check -q
STAMP := .install-stamp
TEST_STAMP := .test-stamp

.PHONY: demo test bench bench-levers bench-arm install clean
comma := ,

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

# Speed vs PyTorch/transformers on this machine -> bench/results.md (about 40 min on 2 cores; wants a quiet machine):
# the fp32 rows of every DESIGN §6 target, plus the bf16 rows where the CPU has AMX (elsewhere they need a Xeon).
AMX := $(shell grep -qw amx_bf16 /proc/cpuinfo 2>/dev/null && echo 1)
bench: $(TEST_STAMP)
	$(PY) bench/features.py --precisions=float32$(if $(AMX),$(comma)bfloat16) --bucket_sets=default,64
	$(PY) bench/scoring.py --n_examples=128 --mix_repeats=2 --news_inputs=24
	$(if $(AMX),$(PY) bench/scoring.py --n_examples=128 --mix_repeats=2 --matmul_dtype=bfloat16 --parts=fixed$(comma)mix --fine_buckets=0 --pack=0 --out=bench/results/scoring_bf16.md)
	$(PY) bench/train_step.py --parts=torch,jax,topk --remat=dots --repeats=3
	$(PY) bench/generate.py --repeats=3
	$(PY) bench/summary.py

# The levers tried beside their baselines (bench/notes.md), about 55 min: packed feature rows, XLA:CPU flags (XNNPACK,
# Eigen's threads off, the concurrency-optimized scheduler), the train step without remat and under XNNPACK,
# generation at batch 32 (the thinking and summary cells' lever), and the bf16 accuracy bound (where the CPU has AMX).
bench-levers: $(TEST_STAMP)
	$(PY) bench/features.py --precisions=float32 --bucket_sets=default,packed --out=bench/results/features_packed.md
	XLA_FLAGS=--xla_cpu_use_xnnpack=true $(PY) bench/features.py --precisions=float32 --bucket_sets=default --out=bench/results/features_xnnpack.md
	XLA_FLAGS=--xla_cpu_multi_thread_eigen=false $(PY) bench/features.py --precisions=float32 --bucket_sets=default --out=bench/results/features_threads.md
	XLA_FLAGS=--xla_cpu_enable_concurrency_optimized_scheduler=true $(PY) bench/features.py --precisions=float32 --bucket_sets=default --out=bench/results/features_scheduler.md
	$(PY) bench/train_step.py --parts=torch,jax --remat=none,dots --levers=xnnpack --repeats=3 --out=bench/results/train_step_levers.md
	$(PY) bench/generate.py --batch=32 --repeats=3 --out=bench/results/generate_b32.md
	$(if $(AMX),$(PY) bench/bf16_accuracy.py --per_task=96)
	$(PY) bench/summary.py

# The wall time of one standard arm, cold and warm feature store (about 45 min) -> bench/results/arm.md; then the summary.
bench-arm: $(TEST_STAMP)
	$(PY) bench/arm.py
	$(PY) bench/summary.py

clean:
	rm -f $(STAMP) $(TEST_STAMP)
