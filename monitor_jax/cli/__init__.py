"""The command line's pieces below `monitor_jax.main`: flag groups and commands."""
