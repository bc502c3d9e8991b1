"""dockyard test suite (a package, so `tests.conftest` and `tests.fakes` import under plain `pytest` too)."""
