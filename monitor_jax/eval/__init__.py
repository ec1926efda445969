"""Scoring, generation, metrics and reports; `protocols/`: with-thinking classification, summaries, elicitation."""
