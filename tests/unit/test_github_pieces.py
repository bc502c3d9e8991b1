from datetime import timedelta

import httpx
from githubkit.exception import RequestFailed, SecondaryRateLimitExceeded

from service.github.client import BoundedRetry, RepoId
from service.github.git_host import fingerprint
from service.tools.diff import Change


def _response(status: int) -> httpx.Response:
    return httpx.Response(
        status, request=httpx.Request("GET", "https://api.github.test/x"), json={"message": "m"}
    )


class _Resp:  # the minimal shape githubkit's RequestFailed reads
    def __init__(self, status: int):
        self.status_code = status
        self.raw_response = _response(status)
        self.raw_request = self.raw_response.request


def test_retry_is_bounded_and_only_for_transient_failures() -> None:
    retry = BoundedRetry(max_retries=2, base_s=0.5, max_wait_s=10)
    server = RequestFailed(_Resp(502))  # type: ignore[arg-type]
    assert retry(server, 0).do_retry and retry(server, 0).retry_after == timedelta(seconds=0.5)
    assert retry(server, 1).retry_after == timedelta(seconds=1.0)
    assert not retry(server, 2).do_retry  # bound reached
    assert not retry(RequestFailed(_Resp(422)), 0).do_retry  # type: ignore[arg-type]
    limited = SecondaryRateLimitExceeded(_Resp(403), timedelta(seconds=300))  # type: ignore[arg-type]
    assert retry(limited, 0).retry_after == timedelta(seconds=10)  # Retry-After capped


def _change(path: str, sha: str) -> Change:
    return Change(path, True, "modified", "100644", "100644", sha, False, 1, 1)


def test_fingerprint_tracks_diff_message_and_branch() -> None:
    one = [_change("a.py", "1" * 40), _change("b.py", "2" * 40)]
    assert fingerprint(one, "m", "fix") == fingerprint(list(reversed(one)), "m", "fix")
    assert fingerprint(one, "m", "fix") != fingerprint(one, "m2", "fix")
    assert fingerprint(one, "m", "fix") != fingerprint([_change("a.py", "3" * 40)], "m", "fix")


def test_repo_id() -> None:
    assert str(RepoId.parse("octo/hello.git")) == "octo/hello"
