"""The git host: GitHub App tokens, token-safe clones, one-commit Git Data API commits, draft PRs,
CI checks. Every API call goes through githubkit (async methods, parsed models)."""
