"""Lowest layer: pinned assets, distributed start-up, mesh rules and small io helpers (imports nothing above)."""
