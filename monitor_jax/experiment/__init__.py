"""Experiments: arms x seeds trained and evaluated under one protocol (`runner`), their statistics and verdicts
(`compare`), and their results files (`write`). Sits on top: it wires data/, model/, train/ and eval/."""
