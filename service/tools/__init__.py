"""WHAT runs in a box: each tool is an argv for the in-box helper (`dockyard-tool`) plus a parser
of its answer. Nothing here talks to Docker; `service.jobs` runs the argv through the backend."""
