"""Test doubles for the services dockyard talks to (e.g. `tests.fakes.github.FakeGitHub`)."""
