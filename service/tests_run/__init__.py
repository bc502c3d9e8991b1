"""Test runs: the repository's tests in a fresh capped box, failures judged new against base_sha."""
