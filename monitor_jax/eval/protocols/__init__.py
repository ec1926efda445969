"""Protocols that generate before scoring: with-thinking classification (and elicitation), summarize-then-judge."""
