"""The repository's own linters, run safely: detection (which linters, by which rule), running
(a hardened linter box per job and image, reset between runs, the workspace read-only), one
parser per output format, and the positional `new` verdict against the same linter at base_sha."""
