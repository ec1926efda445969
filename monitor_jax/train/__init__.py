"""Sharding, train state, losses and the training loop."""
