"""The environment policy: every repository-controlled redirection is refused AND reported, and
what is left is exactly what gets fetched."""

from __future__ import annotations

import json

from service.env.manifests import Manifests
from service.env.policy import Plan, go_plan, node_plan, python_plan

REGISTRY = "https://registry.test.invalid/"


def kinds(p: Plan) -> list[str]:
    return [r.kind for r in p.refused]


def py(files: dict[str, str]) -> Plan:
    return python_plan(Manifests("python", {k: v.encode() for k, v in files.items()}))


def lines(p: Plan, name: str = "requirements.txt") -> list[str]:
    return p.files[name].decode().splitlines()


def test_index_redirections_are_ignored_and_reported() -> None:
    p = py(
        {
            "requirements.txt": "--index-url https://evil.invalid/simple\n-i https://evil.invalid/simple\n"
            "--extra-index-url=https://evil.invalid/x\n-f https://evil.invalid/links\n"
            "--find-links ./wheels\n--trusted-host evil.invalid\n--no-index\nsix==1.16.0\n"
        }
    )
    assert kinds(p) == ["index_redirect"] * 7
    assert lines(p) == ["six==1.16.0"]
    assert "https://evil.invalid/simple" in p.refused[0].detail and p.refused[0].file == "requirements.txt"


def test_vcs_direct_url_local_and_editable_requirements_are_refused() -> None:
    p = py(
        {
            "requirements.txt": "git+https://example.invalid/x.git#egg=x\n"
            "pkg @ git+https://example.invalid/pkg.git\n"
            "other @ https://example.invalid/other-1.0.tar.gz\n"
            "https://example.invalid/third-1.0-py3-none-any.whl\n"
            "./vendor/local-1.0.tar.gz\n"
            "-e .\n"
            "--no-binary :all:\n"
            "--pre\n"
            "iniconfig>=2 ; python_version >= '3.8' --hash=sha256:abc\n"
        }
    )
    assert kinds(p) == [
        "vcs",
        "vcs",
        "direct_url",
        "direct_url",
        "local_path",
        "editable",
        "sdist_only",
        "option",
    ]
    assert lines(p) == ["iniconfig>=2 ; python_version >= '3.8' --hash=sha256:abc"]


def test_includes_inline_and_constraints_stay_constraints() -> None:
    p = py(
        {
            "requirements.txt": "-r requirements-base.txt\n-c constraints.txt\n"
            "-r /etc/passwd\nsix # comment\n",
            "requirements-base.txt": "iniconfig \\\n  ==2.0.0\n",
            "constraints.txt": "six<2\n--index-url https://evil.invalid/\n",
        }
    )
    assert sorted(lines(p)) == ["iniconfig   ==2.0.0", "six"]
    assert lines(p, "constraints.txt") == ["six<2"]
    assert kinds(p) == ["index_redirect", "local_path"]


def test_pyproject_dependencies_dev_extras_and_dependency_groups() -> None:
    p = py(
        {
            "pyproject.toml": """
[project]
name = "My_Project"
dependencies = ["six", "dep @ https://example.invalid/dep.zip"]
[project.optional-dependencies]
test = ["pytest"]
gpu = ["torch"]
all = ["my-project[lint]"]
lint = ["ruff"]
[dependency-groups]
dev = ["mypy", {include-group = "typing"}]
typing = ["types-six"]
docs = ["sphinx"]
"""
        }
    )
    assert sorted(lines(p)) == ["mypy", "pytest", "ruff", "six", "types-six"]  # no gpu, no docs, no self
    assert kinds(p) == ["direct_url"]
    assert not p.lock and not p.empty


def test_uv_lock_pins_with_edge_markers_and_refused_sources() -> None:
    lock = """
version = 1
[[package]]
name = "app"
version = "0.1.0"
source = { editable = "." }
dependencies = [{ name = "six" }, { name = "pywin32", marker = "sys_platform == 'win32'" }]
[package.optional-dependencies]
test = [{ name = "iniconfig" }]
[[package]]
name = "six"
version = "1.16.0"
source = { registry = "https://mirror.invalid/simple" }
[[package]]
name = "pywin32"
version = "306"
source = { registry = "https://mirror.invalid/simple" }
[[package]]
name = "iniconfig"
version = "2.0.0"
source = { registry = "https://mirror.invalid/simple" }
[[package]]
name = "fromgit"
version = "1.0"
source = { git = "https://example.invalid/fromgit?rev=1#abc" }
[[package]]
name = "sibling"
version = "1.0"
source = { directory = "../sibling" }
"""
    p = py({"uv.lock": lock, "pyproject.toml": "[project]\nname='app'\n"})
    assert p.lock and p.source == "uv.lock"
    assert lines(p) == ["six==1.16.0", "pywin32==306 ; (sys_platform == 'win32')", "iniconfig==2.0.0"]
    assert kinds(p) == ["vcs", "local_path"]


def test_poetry_lock_pins_and_a_custom_index_is_ignored() -> None:
    lock = """
[[package]]
name = "six"
version = "1.16.0"
[[package]]
name = "colorama"
version = "0.4.6"
markers = "sys_platform == \\"win32\\""
[[package]]
name = "private"
version = "2.0"
[package.source]
type = "legacy"
url = "https://private.invalid/simple"
reference = "private"
[[package]]
name = "gitdep"
version = "1.0"
[package.source]
type = "git"
url = "https://example.invalid/gitdep.git"
"""
    p = py({"poetry.lock": lock})
    assert lines(p) == ["six==1.16.0", 'colorama==0.4.6 ; sys_platform == "win32"', "private==2.0"]
    assert kinds(p) == ["index_redirect", "vcs"]


def test_nothing_left_after_the_policy_is_empty() -> None:
    p = py({"requirements.txt": "--index-url https://evil.invalid/\ngit+https://example.invalid/x.git\n"})
    assert p.empty and kinds(p) == ["index_redirect", "vcs"]


def node(pkg: dict[str, object], lock: dict[str, object] | None, present: set[str] | None = None) -> Plan:
    files = {"package.json": json.dumps(pkg).encode()}
    if lock is not None:
        files["package-lock.json"] = json.dumps(lock).encode()
    return node_plan(Manifests("node", files, present=present or set()), REGISTRY)


def test_node_npmrc_local_git_and_http_specs_are_refused() -> None:
    pkg = {
        "name": "x",
        "dependencies": {
            "ok": "^1.0.0",
            "loc": "file:../loc",
            "gh": "user/repo",
            "g": "git+ssh://git@h.invalid/r",
        },
        "devDependencies": {"tar": "https://example.invalid/t.tgz", "alias": "npm:ok@1"},
        "workspaces": ["packages/*"],
    }
    lock = {
        "lockfileVersion": 3,
        "packages": {
            "": {"dependencies": {"ok": "^1.0.0", "loc": "file:../loc"}},
            "node_modules/ok": {
                "version": "1.0.1",
                "resolved": REGISTRY + "ok/-/ok-1.0.1.tgz",
                "integrity": "x",
            },
            "node_modules/loc": {"resolved": "../loc", "link": True},
            "node_modules/moved": {"version": "2.0.0", "resolved": "https://mirror.invalid/moved-2.0.0.tgz"},
            "node_modules/fromgit": {
                "version": "1.0.0",
                "resolved": "git+ssh://git@h.invalid/fromgit.git#abc",
            },
            "packages/a": {"version": "0.0.1"},
        },
    }
    p = node(pkg, lock, {".npmrc"})
    assert kinds(p) == [
        "npmrc",
        "local_path",
        "vcs",
        "vcs",
        "direct_url",
        "local_path",
        "registry_redirect",
        "vcs",
        "local_path",
    ]
    out_pkg = json.loads(p.files["package.json"])
    assert out_pkg["dependencies"] == {"ok": "^1.0.0"} and out_pkg["devDependencies"] == {"alias": "npm:ok@1"}
    assert "workspaces" not in out_pkg
    out_lock = json.loads(p.files["package-lock.json"])
    assert set(out_lock["packages"]) == {"", "node_modules/ok", "node_modules/moved"}
    assert out_lock["packages"][""]["dependencies"] == {"ok": "^1.0.0"}
    assert "resolved" not in out_lock["packages"]["node_modules/moved"]  # fetched from the registry
    assert out_lock["packages"]["node_modules/ok"]["resolved"].startswith(REGISTRY)


def test_node_lockfile_v1_resolved_outside_the_registry() -> None:
    lock = {
        "lockfileVersion": 1,
        "dependencies": {"a": {"version": "1.0.0", "resolved": "https://m.invalid/a.tgz"}},
    }
    p = node({"dependencies": {"a": "1.0.0"}}, lock)
    assert kinds(p) == ["registry_redirect"]
    assert "resolved" not in json.loads(p.files["package-lock.json"])["dependencies"]["a"]


def test_go_local_replaces_are_removed() -> None:
    mod = """module example.com/m

go 1.21

require example.com/dep v1.0.0

replace example.com/dep => ../dep
replace example.com/other v1.0.0 => example.com/fork v1.0.1
replace (
\texample.com/a => ./a
\texample.com/b => example.com/b2 v0.1.0
)
"""
    p = go_plan(Manifests("go", {"go.mod": mod.encode(), "go.sum": b"sums\n"}))
    assert kinds(p) == ["local_replace", "local_replace"]
    text = p.files["go.mod"].decode()
    assert "../dep" not in text and "./a" not in text
    assert "example.com/fork v1.0.1" in text and "example.com/b2 v0.1.0" in text
    assert p.files["go.sum"] == b"sums\n" and not p.empty


def test_a_fetch_box_receives_only_the_sanitized_inputs() -> None:
    import io
    import tarfile

    from service.env.fetch import input_tar

    p = py({"requirements.txt": "--index-url https://evil.invalid/\nsix\n"})
    with tarfile.open(fileobj=io.BytesIO(input_tar(p.files, b"CA"))) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert set(members) == {".in", ".in/requirements.txt", ".in/ca.crt"}
        assert all(m.uid == 1000 for m in members.values())
        f = tar.extractfile(".in/requirements.txt")
        assert f is not None and f.read() == b"six\n"
