"""Honest limits: a requested limit above the ops maximum is clamped AND said (issue 11)."""

from service.settings import load_images_config
from tests.conftest import REPO_ROOT

CFG = load_images_config(REPO_ROOT / "sandbox-images" / "images.toml")


def test_clamped_says_what_was_cut() -> None:
    asked = {"output_cap_kb": 10**6, "lint_timeout_s": 5, "memory_mb": None, "nonsense": 1}
    assert CFG.clamp(asked).output_cap_kb == CFG.limits.maxima.output_cap_kb
    assert CFG.clamp(asked).lint_timeout_s == 5
    assert CFG.clamped(asked) == {
        "output_cap_kb": {"requested": 10**6, "maximum": CFG.limits.maxima.output_cap_kb}
    }


def test_shellcheck_gets_its_own_memory_above_a_jobs_default() -> None:
    spec = CFG.languages["shell"].linters["shellcheck"]
    assert spec.memory_mb is not None and spec.memory_mb > CFG.limits.defaults.memory_mb
    assert spec.memory_mb <= CFG.limits.maxima.memory_mb
