"""Test runners' machine output → cases: pytest JUnit (xunit1 node ids, 1-based lines, hostile
XML refused), go test -json (tests, subtests, a package that does not build), node 18's TAP."""

from __future__ import annotations

import json

from service.tests_run.parsers import parse_go_json, parse_junit, parse_tap

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="1" failures="1" skipped="1" tests="5">
<testcase classname="tests.test_calc" name="test_add" file="tests/test_calc.py" line="3" time="0.001"/>
<testcase classname="tests.test_calc.TestMul" name="test_mul[2-3]" file="tests/test_calc.py" line="9">
  <failure message="assert 5 == 6">def test_mul():
&gt;       assert mul(2, 3) == 6
E       assert 5 == 6</failure></testcase>
<testcase classname="tests.test_calc" name="test_skip" file="tests/test_calc.py" line="14">
  <skipped type="pytest.skip" message="not today">tests/test_calc.py:15: not today</skipped></testcase>
<testcase classname="" name="tests.test_broken" file="tests/test_broken.py">
  <error message="collection failure">ImportError: no module named nope</error></testcase>
<testcase classname="test_root" name="test_x" file="test_root.py" line="0"/>
</testsuite></testsuites>
"""


def test_junit_gives_pytest_node_ids_outcomes_and_one_based_lines() -> None:
    report = parse_junit(JUNIT, "")
    assert report.error is None
    got = {(c.id, c.outcome, c.path, c.line) for c in report.cases}
    assert got == {
        ("tests/test_calc.py::test_add", "passed", "tests/test_calc.py", 4),
        ("tests/test_calc.py::TestMul::test_mul[2-3]", "failed", "tests/test_calc.py", 10),
        ("tests/test_calc.py::test_skip", "skipped", "tests/test_calc.py", 15),
        ("tests/test_broken.py::tests.test_broken", "error", "tests/test_broken.py", None),
        ("test_root.py::test_x", "passed", "test_root.py", 1),
    }
    assert report.counts() == {"passed": 2, "failed": 1, "skipped": 1, "errors": 1}
    mul = next(c for c in report.cases if c.outcome == "failed")
    assert mul.message.startswith("assert 5 == 6") and "E       assert 5 == 6" in mul.message


def test_junit_with_a_dtd_or_entities_is_refused_not_expanded() -> None:
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>'
        '<testsuite><testcase classname="x" name="&b;"/></testsuite>'
    )
    report = parse_junit(bomb, "")
    assert report.cases == [] and report.error is not None and "refused" in report.error
    external = '<!DOCTYPE x SYSTEM "file:///etc/passwd"><testsuite/>'
    assert parse_junit(external, "").error is not None
    assert "not valid XML" in (parse_junit("<testsuite><testcase", "").error or "")
    assert parse_junit("", "").error == "the runner wrote no JUnit report"


def go_events(*events: dict[str, object]) -> str:
    return "\n".join(json.dumps(e) for e in events) + "\n"


def test_go_json_tests_subtests_and_a_package_that_does_not_build() -> None:
    out = go_events(
        {"Action": "run", "Package": "ex.com/m/calc", "Test": "TestAdd"},
        {"Action": "pass", "Package": "ex.com/m/calc", "Test": "TestAdd"},
        {"Action": "run", "Package": "ex.com/m/calc", "Test": "TestMul"},
        {
            "Action": "output",
            "Package": "ex.com/m/calc",
            "Test": "TestMul/neg",
            "Output": "=== RUN   TestMul/neg\n",
        },
        {
            "Action": "output",
            "Package": "ex.com/m/calc",
            "Test": "TestMul/neg",
            "Output": "    calc_test.go:13: got -1\n",
        },
        {"Action": "fail", "Package": "ex.com/m/calc", "Test": "TestMul/neg"},
        {"Action": "fail", "Package": "ex.com/m/calc", "Test": "TestMul"},
        {"Action": "skip", "Package": "ex.com/m/calc", "Test": "TestLater"},
        {"Action": "fail", "Package": "ex.com/m/calc"},
        {"Action": "build-output", "ImportPath": "ex.com/m/bad", "Output": "bad/x.go:3:1: syntax error\n"},
        {"Action": "fail", "Package": "ex.com/m/bad", "FailedBuild": "ex.com/m/bad"},
    )
    report = parse_go_json(out, "")
    got = {c.id: c.outcome for c in report.cases}
    assert got == {
        "ex.com/m/calc::TestAdd": "passed",
        "ex.com/m/calc::TestMul/neg": "failed",
        "ex.com/m/calc::TestMul": "failed",
        "ex.com/m/calc::TestLater": "skipped",
        "ex.com/m/bad::(package)": "error",
    }
    neg = next(c for c in report.cases if c.id.endswith("TestMul/neg"))
    assert (
        (neg.path, neg.line) == ("calc_test.go", 13)
        and "got -1" in neg.message
        and "=== RUN" not in neg.message
    )
    bad = next(c for c in report.cases if c.id.endswith("(package)"))
    assert "syntax error" in bad.message
    assert parse_go_json("not json at all\n", "go: no go.mod").error is not None


TAP = """TAP version 13
# Subtest: math
    # Subtest: adds
    ok 1 - adds
      ---
      duration_ms: 0.5
      ...
    # Subtest: divides
    not ok 2 - divides
      ---
      duration_ms: 1.2
      location: '/tmp/ws/test/math.test.js:7:3'
      failureType: 'testCodeFailure'
      error: |-
        Expected values to be strictly equal:

        3 !== 2
      code: 'ERR_ASSERTION'
      ...
    1..2
not ok 1 - math
  ---
  duration_ms: 2
  location: '/tmp/ws/test/math.test.js:3:1'
  failureType: 'subtestsFailed'
  error: '1 subtest failed'
  ...
# Subtest: later
ok 2 - later # SKIP not yet
  ---
  duration_ms: 0.1
  ...
# Subtest: top level
not ok 3 - top level
  ---
  location: '/tmp/base/test/other.test.js:2:1'
  error: 'boom'
  ...
1..3
# tests 4
"""


def test_tap_nested_suites_are_not_cases_their_tests_are() -> None:
    report = parse_tap(TAP, "")
    got = {(c.id, c.outcome, c.path, c.line) for c in report.cases}
    assert got == {
        ("math > adds", "passed", None, None),
        ("math > divides", "failed", "test/math.test.js", 7),
        ("later", "skipped", None, None),
        ("top level", "failed", "test/other.test.js", 2),
    }
    divides = next(c for c in report.cases if c.id == "math > divides")
    assert "3 !== 2" in divides.message and "code:" not in divides.message
    assert next(c for c in report.cases if c.id == "top level").message == "boom"
    assert parse_tap("npm ERR! missing script: test\n", "").cases == []
