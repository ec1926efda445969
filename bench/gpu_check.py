"""One-shot accelerator check (run on a lent GPU): parity with PyTorch and throughput on SmolLM2-135M shapes.

Random weights with SmolLM2-135M's dims (the GGUF is too large to carry), saved by transformers and loaded by
`weights.load_hf`, so both sides run the same model. Sections: fp32 logit parity on a right-padded batch;
scoring forward tokens/s (ours: jitted label scoring; PyTorch: `logits_to_keep=1`), fp32 and bf16; the
1-token SFT train step with AdamW, fp32. Each timing is the median of timed repeats after warm-up, both sides
in the same process on the same batches.

    python bench/gpu_check.py --out=$OUT/gpu_check.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
import traceback

import jax
import jax.numpy as jnp
import numpy as np
import torch
import transformers

from monitor_jax.core import config as config_lib
from monitor_jax.eval import scoring
from monitor_jax.model import transformer, weights
from monitor_jax.model.registry import LoadedModel

SMOL = dict(vocab_size=49152, hidden_size=576, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
            head_dim=64, intermediate_size=1536, rope_theta=1e5, rms_norm_eps=1e-5, tie_word_embeddings=True,
            max_position_embeddings=8192)


def timed(fn, repeats: int) -> float:
    """Median seconds of `fn()` (which must block until done) over `repeats` runs after 2 warm-ups."""
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="gpu_check.json")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--smoke", action="store_true", help="tiny dims on CPU: checks the script itself")
    args = ap.parse_args()
    if args.smoke:
        SMOL.update(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                    intermediate_size=96)
    res: dict = {"jax": jax.__version__, "torch": torch.__version__, "transformers": transformers.__version__,
                 "devices": [str(d) for d in jax.devices()], "machine": platform.node(),
                 "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    torch.manual_seed(0)
    hf_cfg = transformers.LlamaConfig(**SMOL)
    tmodel = transformers.LlamaForCausalLM(hf_cfg).to(dev).eval()
    tmp = tempfile.mkdtemp()
    tmodel.save_pretrained(tmp)
    cfg, params = weights.load_hf(tmp)
    params = jax.device_put(params)
    rng = np.random.default_rng(0)

    def section(name, fn):
        try:
            t0 = time.time()
            res[name] = fn()
            res[name]["wall_s"] = round(time.time() - t0, 1)
        except Exception:  # keep going: one broken section must not lose the others
            res[name] = {"error": traceback.format_exc()[-2000:]}
        print(name, json.dumps(res[name])[:800], flush=True)

    def parity():
        tokens = rng.integers(0, 49152, (2, 64))
        mask = np.ones((2, 64), np.int64)
        mask[1, 40:] = 0
        with torch.inference_mode():
            ref = tmodel(torch.tensor(tokens, device=dev), attention_mask=torch.tensor(mask, device=dev)).logits
        ref = ref.float().cpu().numpy()
        h, _ = transformer.Transformer(cfg).apply({"params": params}, jnp.asarray(tokens), segment_ids=jnp.asarray(mask))
        ours = np.asarray(transformer.logits(params, h))
        real = mask.astype(bool)
        return {"max_abs_diff_fp32": float(np.abs(ours[real] - ref[real]).max()), "max_abs_logit": float(np.abs(ref).max())}

    def scoring_speed():
        out = {}
        for b, t in ((8, 256),) if args.smoke else ((8, 256), (64, 256)):
            tokens = rng.integers(0, 49152, (b, t)).astype(np.int32)
            segs = np.ones_like(tokens)
            ans = np.full((b,), t - 1, np.int32)
            lab = np.tile(np.array([[10539, 5230]], np.int32), (b, 1))
            tt, tm = torch.tensor(tokens, device=dev).long(), torch.tensor(segs, device=dev).long()
            for dtype in ("float32", "bfloat16"):
                c = scoring.inference_config(cfg.replace(dtype=dtype))
                p = params if dtype == "float32" else jax.tree_util.tree_map(lambda x: x.astype(jnp.bfloat16), params)
                arrs = [jnp.asarray(x) for x in (tokens, segs, ans, lab)]
                ours = timed(lambda: jax.block_until_ready(scoring.label_logprobs(c, p, *arrs)), args_rep_n)
                tm_ = tmodel.to(torch.bfloat16 if dtype == "bfloat16" else torch.float32)

                def torch_fwd():
                    with torch.inference_mode():
                        tm_(tt, attention_mask=tm, logits_to_keep=1).logits.float().cpu()
                    sync()

                ref = timed(torch_fwd, args_rep_n)
                out[f"{b}x{t}_{dtype}"] = {"ours_tok_s": b * t / ours, "torch_tok_s": b * t / ref, "ratio": ref / ours}
            tmodel.to(torch.float32)
        return out

    args_rep_n = args.repeats

    def train_speed():
        config = config_lib.load("configs/base.py")
        from monitor_jax.core import sharding
        from monitor_jax.train import state, step

        with config.unlocked():
            config.model.remat = "none"
            config.optim.warmup_steps = 0
        mesh = sharding.make_mesh({"data": -1, "fsdp": 1, "tensor": 1})
        out = {}
        b, t = 8, 256
        tokens = rng.integers(0, 49152, (b, t)).astype(np.int32)
        batch = {
            "tokens": tokens, "positions": np.tile(np.arange(t, dtype=np.int32), (b, 1)),
            "segment_ids": np.ones((b, t), np.int32), "answer_index": np.full((b,), t - 1, np.int32),
            "label": np.ones((b,), np.int32), "label_ids": np.tile(np.array([[10539, 5230]], np.int32), (b, 1)),
            "answer_id": np.full((b,), 10539, np.int32), "loss_mask": np.zeros((b, t), np.float32),
            "weight": np.ones((b,), np.float32), "is_classification": np.ones((b,), bool),
            "task_index": np.zeros((b,), np.int32),
        }
        batch["tokens"][:, t - 1] = 10539
        for remat in ("none", "full"):
            with config.unlocked():
                config.model.remat = remat
            st, shard = state.create_train_state(config, LoadedModel("rand", cfg, jax.device_get(params), None), mesh)
            fn = step.make_train_step(config, cfg, mesh, shard)
            dev_batch = sharding.shard_batch(batch, mesh)
            holder = {"s": st}

            def run():
                holder["s"], m = fn(holder["s"], dev_batch)
                jax.block_until_ready(m["loss"])

            out[f"ours_remat_{remat}_tok_s"] = b * t / timed(run, args_rep_n)
        opt = torch.optim.AdamW(tmodel.parameters(), lr=1e-4)
        tt = torch.tensor(tokens, device=dev).long()
        tgt = tt[:, t - 1]

        def torch_step():
            opt.zero_grad(set_to_none=True)
            logits = tmodel(tt, logits_to_keep=2).logits[:, 0]  # the output at t-2 predicts the token at t-1
            loss = torch.nn.functional.cross_entropy(logits.float(), tgt)
            loss.backward()
            opt.step()
            sync()

        tmodel.train()
        out["torch_tok_s"] = b * t / timed(torch_step, args_rep_n)
        out["ratio_remat_none"] = out["ours_remat_none_tok_s"] / out["torch_tok_s"]
        return out

    section("parity", parity)
    section("scoring", scoring_speed)
    section("train_step", train_speed)
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
