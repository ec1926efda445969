"""Agent-transcript domains: the AgentDojo-derived domain (`agentdojo_*`, `builder`) (the procedural generator still lives in data/agent_*.py)."""
