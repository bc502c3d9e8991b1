import pytest

from service.clone import check_clone_url, redact_url
from service.errors import InvalidRequest

ALLOWED = frozenset({"https", "file"})


def test_redact_url_drops_credentials() -> None:
    assert redact_url("https://x-access-token:ghs_SECRET@github.com/o/r.git") == "https://github.com/o/r.git"
    assert redact_url("file:///srv/r") == "file:///srv/r"


@pytest.mark.parametrize(
    "url", ["ext::sh -c touch% /tmp/pwned", "/srv/repo", "git@github.com:o/r.git", "ssh://host/r", "-u/x://y"]
)
def test_clone_url_refused(url: str) -> None:
    with pytest.raises(InvalidRequest):
        check_clone_url(url, ALLOWED)


def test_clone_url_allowed() -> None:
    check_clone_url("https://github.com/o/r.git", ALLOWED)
    check_clone_url("file:///srv/r", ALLOWED)
