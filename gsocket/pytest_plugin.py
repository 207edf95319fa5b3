"""pytest plugin for gsocket (placeholder until its issue lands)."""
