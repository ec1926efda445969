"""Llama-family Flax decoder, weights, tokenizer, LoRA and the model registry."""
