"""Dependency environments: a repository's own dependencies, fetched without running any of its
code, installed with network none, cached in docker volumes and mounted read-only at /env.

Layout of an environment volume (the contract with the linters and tests that use it):
Python `/env/venv` (a venv: `/env/venv/bin/<tool>`), Node `/env/node_modules` (+ `.bin/`),
Go `/env/gomod` (a GOMODCACHE).
"""
