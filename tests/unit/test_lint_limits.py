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


def test_a_linters_own_limits_cut_to_the_jobs_are_said() -> None:
    """A linter whose ops entry asks more time or memory than it gets reports what was lowered."""
    from service.lint.detect import Pick
    from service.lint.runner import LintService
    from service.settings import Limits

    spec = CFG.languages["shell"].linters["shellcheck"].model_copy(
        update={"timeout_s": 10**6, "memory_mb": CFG.limits.maxima.memory_mb * 4, "cpus": None}
    )
    pick = Pick(language="shell", name="shellcheck", spec=spec, rule="default", files=["a.sh"])
    job = Limits(**{**CFG.limits.defaults.model_dump(), "lint_timeout_s": 30})

    class _Jobs:
        class images:  # noqa: N801  # the attribute the runner reads
            config = CFG

    service = LintService.__new__(LintService)
    service.jobs = _Jobs()  # type: ignore[assignment]
    limits = service._limits(pick, job)
    clamped = LintService._clamped(pick, limits)
    assert limits.lint_timeout_s == 30 and limits.memory_mb == CFG.limits.maxima.memory_mb
    assert clamped["lint_timeout_s"].model_dump() == {"requested": 10**6, "maximum": 30}
    assert clamped["memory_mb"].maximum == CFG.limits.maxima.memory_mb and "cpus" not in clamped
    untouched = pick.spec.model_copy(update={"timeout_s": 5, "memory_mb": None, "pids": None})
    assert LintService._clamped(Pick("shell", "shellcheck", untouched, "default", []), limits) == {}
