"""The labels every box and volume dockyard makes carries, and the names of a job's box.

Backend-neutral: Docker labels today, Kubernetes labels later. The reaper reconciles by them.
"""

from __future__ import annotations

MANAGED_LABEL = "dockyard.managed"
JOB_LABEL = "dockyard.job"
EXPIRES_LABEL = "dockyard.expires"
INSTANCE_LABEL = "dockyard.instance"  # which service (state dir) owns it: reconcile touches only its own


def box_name(job_id: str) -> str:
    """A job's box (and its workspace volume) is named after the job."""
    return f"dockyard-{job_id}"
