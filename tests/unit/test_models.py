import pytest
from pydantic import ValidationError

from service.models import JobCreate, ReadFileRequest, WriteFileRequest


def test_path_rejects_nul_and_huge() -> None:
    with pytest.raises(ValidationError, match="NUL"):
        ReadFileRequest(path="a\x00b")
    with pytest.raises(ValidationError):
        ReadFileRequest(path="a" * 5000)
    with pytest.raises(ValidationError):
        WriteFileRequest(path="", content="")


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError, match="extra"):
        ReadFileRequest.model_validate({"path": "a", "colour": "red"})


def test_job_labels_reserved_prefix() -> None:
    with pytest.raises(ValidationError, match="reserved"):
        JobCreate(clone_url="file:///x", labels={"dockyard.job": "x"})
    assert JobCreate(clone_url="file:///x", labels={"bug": "BUG-42"}).labels == {"bug": "BUG-42"}


def test_job_ref_rejects_option_like_and_spaces() -> None:
    with pytest.raises(ValidationError):
        JobCreate(clone_url="file:///x", ref="main branch")
    with pytest.raises(ValidationError):
        JobCreate(repo="not a repo")
