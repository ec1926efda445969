"""Agent-transcript domains: the procedural generator (`generator`, with `actions`, `actions_access`, `scenarios`,
`scenarios_ops`) and its independent rule checker (`rules`, on the `shell` parser); the AgentDojo-derived domain
(`agentdojo_*`, `builder`)."""
