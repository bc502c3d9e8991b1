"""The job service, by concern:

- `lifecycle.py`    a job's life: admission, create → ready, delete, reap, vanish, logs
- `execs.py`        every exec in a box and its audit record (`run_tool`)
- `config.py`       the running image config and its reload (`ImageState`)
- `environments.py` what a job needs of the dependency environments (a Protocol)
- `service.py`      `JobService`, the one class callers use, composing the parts
"""

from service.jobs.config import ImageState
from service.jobs.lifecycle import VANISHED, new_job_id
from service.jobs.service import JobService

__all__ = ["VANISHED", "ImageState", "JobService", "new_job_id"]
