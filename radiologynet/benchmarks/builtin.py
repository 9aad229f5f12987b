"""The built-in tasks (filled in by the runner's task module)."""
