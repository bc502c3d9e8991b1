"""Each parser on the linter's real output shape → repo-relative diagnostics."""

import json

from service.lint.parsers import PARSERS, Diagnostic
from service.settings import ParserName


def test_every_configurable_parser_exists() -> None:
    assert set(PARSERS) == set(ParserName.__args__)  # type: ignore[attr-defined]


def test_ruff_json() -> None:
    out = json.dumps(
        [
            {
                "code": "F401",
                "message": "`os` imported but unused",
                "filename": "/workspace/src/a.py",
                "location": {"row": 1, "column": 8},
                "end_location": {"row": 1, "column": 10},
            },
            {
                "code": None,
                "message": "SyntaxError: Expected an expression",
                "filename": "/tmp/base/b.py",
                "location": {"row": 3, "column": 1},
            },
        ]
    )
    assert PARSERS["ruff_json"](out, "") == [
        Diagnostic("src/a.py", 1, 8, "F401", "`os` imported but unused", "error"),
        Diagnostic("b.py", 3, 1, "syntax-error", "SyntaxError: Expected an expression", "error"),
    ]


def test_flake8_default_format() -> None:
    out = (
        "./src/a.py:1:1: F401 'os' imported but unused\n"
        "src/a.py:2:80: E501 line too long (99 > 79 characters)\n"
    )
    assert [(d.path, d.line, d.column, d.code) for d in PARSERS["flake8"](out, "")] == [
        ("src/a.py", 1, 1, "F401"),
        ("src/a.py", 2, 80, "E501"),
    ]


def test_pylint_json2_and_json() -> None:
    json2 = json.dumps(
        {
            "messages": [
                {
                    "type": "convention",
                    "symbol": "missing-module-docstring",
                    "message": "Missing module docstring",
                    "messageId": "C0114",
                    "line": 1,
                    "column": 0,
                    "path": "a.py",
                },
            ],
            "statistics": {},
        }
    )
    legacy = json.dumps(
        [
            {
                "type": "error",
                "symbol": "undefined-variable",
                "message": "Undefined variable 'x'",
                "message-id": "E0602",
                "line": 4,
                "column": 10,
                "path": "pkg/b.py",
            },
        ]
    )
    (d1,) = PARSERS["pylint_json"](json2, "")
    (d2,) = PARSERS["pylint_json"](legacy, "")
    assert (d1.path, d1.line, d1.column, d1.code, d1.severity) == ("a.py", 1, 1, "C0114", "info")
    assert (d2.path, d2.column, d2.code, d2.severity) == ("pkg/b.py", 11, "E0602", "error")


def test_mypy_lines() -> None:
    out = (
        'a.py:3:12: error: Incompatible return value type (got "str", expected "int")  [return-value]\n'
        "a.py:3:12: note: see https://mypy.readthedocs.io\n"
        'b.py:7: error: Name "y" is not defined  [name-defined]\n'
    )
    assert [(d.path, d.line, d.column, d.code) for d in PARSERS["mypy"](out, "")] == [
        ("a.py", 3, 12, "return-value"),
        ("b.py", 7, 1, "name-defined"),
    ]


def test_eslint_json() -> None:
    out = json.dumps(
        [
            {
                "filePath": "/workspace/src/x.ts",
                "messages": [
                    {
                        "ruleId": "no-unused-vars",
                        "severity": 2,
                        "message": "'a' is assigned a value but never used.",
                        "line": 1,
                        "column": 7,
                    },
                    {
                        "ruleId": None,
                        "fatal": True,
                        "severity": 2,
                        "message": "Parsing error: Unexpected token",
                        "line": 2,
                        "column": 1,
                    },
                ],
            }
        ]
    )
    assert [(d.path, d.code, d.severity) for d in PARSERS["eslint_json"](out, "")] == [
        ("src/x.ts", "no-unused-vars", "error"),
        ("src/x.ts", "parse-error", "error"),
    ]


def test_go_vet_and_gofmt() -> None:
    vet = "# example.com/m\n./main.go:6:2: fmt.Printf format %d has arg s of wrong type string\n"
    (d,) = PARSERS["go_vet"]("", vet)
    assert (d.path, d.line, d.column, d.code) == ("main.go", 6, 2, "vet")
    assert [x.path for x in PARSERS["gofmt"]("main.go\npkg/util.go\n", "")] == ["main.go", "pkg/util.go"]


def test_shellcheck_json1() -> None:
    out = json.dumps(
        {
            "comments": [
                {
                    "file": "./run.sh",
                    "line": 3,
                    "column": 6,
                    "level": "warning",
                    "code": 2086,
                    "message": "Double quote to prevent globbing and word splitting.",
                },
            ]
        }
    )
    (d,) = PARSERS["shellcheck_json"](out, "")
    assert (d.path, d.line, d.column, d.code, d.severity) == ("run.sh", 3, 6, "SC2086", "warning")


def test_garbage_gives_no_diagnostics() -> None:
    for parse in PARSERS.values():
        assert parse("Traceback (most recent call last):\n  boom", "error: crashed") == []


def test_mypy_end_columns_and_file_level_errors() -> None:
    out = (
        'src/m.py:2:12:2:14: error: Incompatible return value type (got "str", expected "int")'
        "  [return-value]\n"
        'tests/a/conftest.py: error: Duplicate module named "conftest" (also at "tests/b/conftest.py")\n'
        "src/m.py:5: note: See https://mypy.readthedocs.io\n"
    )
    assert PARSERS["mypy"](out, "mypy: error: unrecognized arguments: --x\n") == [
        Diagnostic(
            "src/m.py",
            2,
            12,
            "return-value",
            'Incompatible return value type (got "str", expected "int")',
            "error",
        ),
        Diagnostic(
            "tests/a/conftest.py",
            1,
            1,
            "mypy",
            'Duplicate module named "conftest" (also at "tests/b/conftest.py")',
            "error",
        ),
    ]


def test_eslint_drops_the_repos_ignored_file_notices() -> None:
    out = json.dumps(
        [
            {
                "filePath": "/workspace/dist/x.js",
                "messages": [
                    {
                        "ruleId": None,
                        "severity": 1,
                        "message": "File ignored because of a matching ignore pattern.",
                    }
                ],
            },
            {
                "filePath": "/workspace/a.js",
                "messages": [{"ruleId": "no-undef", "severity": 2, "message": "x", "line": 3, "column": 1}],
            },
        ]
    )
    assert PARSERS["eslint_json"](out, "") == [Diagnostic("a.js", 3, 1, "no-undef", "x", "error")]


def test_go_vet_load_failures_are_not_findings() -> None:
    err = (
        "main.go:3:8: no required module provides package github.com/google/uuid; to add:\n"
        "\tgo get github.com/google/uuid\n"
        "vet: main.go:9:2: fmt.Printf format %d has arg s of wrong type string\n"
    )
    assert [(d.line, d.message[:10]) for d in PARSERS["go_vet"]("", err)] == [(9, "fmt.Printf")]
