"""The one plain-text form of an agent transcript that every agent source renders to (the procedural generator,
AgentDojo, Inspect logs): "USER: ...", "ASSISTANT: ...", "TOOL OUTPUT: ..." blocks, one line apart. It is a
dataset item's text; control tokens in it are escaped later, by the pipeline's one prompt renderer."""
from __future__ import annotations

from typing import Mapping, Sequence

ROLE_NAMES = {"user": "USER", "assistant": "ASSISTANT", "tool": "TOOL OUTPUT"}


def render(messages: Sequence[Mapping[str, str]]) -> str:
    """Plain text for a monitor prompt: one f"{ROLE}: {content}" block per message, joined by newlines."""
    return "\n".join(f"{ROLE_NAMES[m['role']]}: {m['content']}" for m in messages)
