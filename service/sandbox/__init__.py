"""WHERE a box runs: the backend interface and its Docker implementation."""
