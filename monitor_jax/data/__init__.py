"""Offline assets, tasks, dataset builders and the grain batching pipeline."""
