"""The repository's own linters, run safely: detection (which linters, by which rule), running
(one fresh hardened container per linter, the workspace read-only), one parser per output format,
and the `new` verdict against the same linter on the files at base_sha."""
