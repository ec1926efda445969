"""Scoring, generation, metrics and reports."""
