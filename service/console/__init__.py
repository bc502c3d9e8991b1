"""The auditors' read-only console at /console: server-rendered pages (pages.py, templates/), one
stylesheet (static/), no script; sessions (sessions.py) let a browser use an auditor's token."""
