"""Tables (tidy CSV) and figures regenerated from the per-run metric JSON files."""
