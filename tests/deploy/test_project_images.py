"""`stead dockerfile` and `stead build` without a docker engine: what the Dockerfile of each kind
of project does, what goes into the build context, and the one-line errors."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from stead.images.build import DOCKERFILE_NAME, write_context
from tests.deploy.test_docker_files import hadolint
from tests.support.docker import REPO

PROJECT = REPO / "tests" / "containers" / "project"


def stead(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stead", *args], capture_output=True, text=True, cwd=cwd, env=env
    )


def dockerfile(config: Path, *args: str) -> str:
    done = stead("dockerfile", "-c", str(config), "-", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def instructions(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def write_project(root: Path, config: dict[str, object], files: dict[str, str]) -> Path:
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(content)
    root.mkdir(parents=True, exist_ok=True)
    (root / "langgraph.json").write_text(json.dumps(config))
    return root / "langgraph.json"


def test_the_example_project_is_copied_whole_onto_steads_image(tmp_path: Path) -> None:
    text = dockerfile(REPO / "examples" / "langgraph.json")
    assert instructions(text) == [
        "FROM stead:0.1.0",
        "USER 0:0",
        "COPY . /deps/examples",
        "ENV STEAD_CONFIG=/deps/examples/langgraph.json STEAD_ENV_FILE_OPTIONAL=true",
        "WORKDIR /deps/examples",
        "USER 10001:10001",
    ]
    out = tmp_path / "Dockerfile"
    out.write_text(text)
    assert hadolint(out).returncode == 0, hadolint(out).stdout


def test_requirements_are_installed_before_the_code_under_steads_versions(tmp_path: Path) -> None:
    config = write_project(
        tmp_path / "agent",
        {"dependencies": [".", "langchain-openai>=0.3"], "graphs": {"g": "./graph.py:graph"}},
        {"requirements.txt": "tabulate==0.9.0\n", "graph.py": "graph = None\n"},
    )
    steps = instructions(dockerfile(config, "--base-image", "registry.example/stead:1"))
    assert steps[0] == "FROM registry.example/stead:1"
    pip = "pip install --no-cache-dir -c /opt/stead/constraints.txt"
    copy_code = steps.index("COPY . /deps/agent")
    assert steps.index("COPY ./requirements.txt /deps/agent/requirements.txt") < copy_code
    assert steps.index(f"RUN {pip} -r /deps/agent/requirements.txt") < copy_code
    assert steps.index(f"RUN {pip} 'langchain-openai>=0.3'") < copy_code


def test_a_local_package_is_installed_and_the_seed_layout_kept(tmp_path: Path) -> None:
    text = dockerfile(PROJECT / "langgraph.json")
    steps = instructions(text)
    pip = "pip install --no-cache-dir -c /opt/stead/constraints.txt"
    assert f"RUN {pip} -e /deps/project/libs/greeting" in steps
    assert steps.index("COPY . /deps/project") < steps.index(
        f"RUN {pip} -e /deps/project/libs/greeting"
    )
    assert steps[-1] == "USER 10001:10001"
    out = tmp_path / "Dockerfile"
    out.write_text(text)
    assert hadolint(out).returncode == 0, hadolint(out).stdout


@pytest.mark.parametrize(
    ("config", "files", "message"),
    [
        (
            {"dependencies": ["./missing"], "graphs": {"g": "./g.py:g"}},
            {"g.py": ""},
            "does not exist",
        ),
        (
            {"dependencies": ["../"], "graphs": {"g": "./g.py:g"}},
            {"g.py": ""},
            "outside the project folder",
        ),
        (
            {"dependencies": ["."], "graphs": {"g": "./nowhere.py:g"}},
            {},
            "file ./nowhere.py not found",
        ),
        ({"dependencies": "."}, {}, "'graphs' must be"),
    ],
)
def test_a_bad_project_is_one_line_and_no_file(
    tmp_path: Path, config: dict[str, object], files: dict[str, str], message: str
) -> None:
    path = write_project(tmp_path / "bad", config, files)
    done = stead("dockerfile", "-c", str(path))
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert not (path.parent / "Dockerfile").exists()


def test_a_langgraph_json_that_does_not_parse_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "langgraph.json").write_text("{not json")
    done = stead("build", "-t", "x", "-c", str(tmp_path / "langgraph.json"))
    assert done.returncode == 1
    assert done.stderr.startswith("stead: error:") and "is not valid JSON" in done.stderr
    assert done.stderr.count("\n") == 1


def test_a_hand_written_dockerfile_is_never_overwritten(tmp_path: Path) -> None:
    project = tmp_path / "p"
    shutil.copytree(REPO / "examples", project)
    (project / "Dockerfile").write_text("FROM mine\n")
    done = stead("dockerfile", "-c", str(project / "langgraph.json"))
    assert done.returncode == 1 and "was not written by stead dockerfile" in done.stderr
    assert (project / "Dockerfile").read_text() == "FROM mine\n"
    (project / "Dockerfile").unlink()
    assert stead("dockerfile", "-c", str(project / "langgraph.json")).returncode == 0
    assert stead("dockerfile", "-c", str(project / "langgraph.json")).returncode == 0  # its own


def test_without_a_docker_engine_build_says_so_in_one_line(tmp_path: Path) -> None:
    config = str(REPO / "examples" / "langgraph.json")
    no_command = stead("build", "-t", "x", "-c", config, env={"PATH": str(tmp_path)})
    assert no_command.returncode == 1
    assert (
        no_command.stderr
        == "stead: error: no docker engine: the 'docker' command is not installed\n"
    )
    unreachable = stead(
        "build", "-t", "x", "-c", config,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "DOCKER_HOST": f"unix://{tmp_path}/none.sock"},
    )  # fmt: skip
    assert unreachable.returncode == 1
    assert unreachable.stderr.startswith("stead: error: no docker engine answers:")
    assert unreachable.stderr.count("\n") == 1


def test_the_build_context_leaves_out_secrets_and_local_data(tmp_path: Path) -> None:
    project = tmp_path / "p"
    shutil.copytree(PROJECT, project)
    for name in (
        ".env",
        ".env.local",
        ".env.example",
        ".stead/stead.sqlite",
        ".git/HEAD",
        "src/x/__pycache__/m.pyc",
    ):
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text("x")
    buffer = io.BytesIO()
    write_context(project, "FROM scratch\n", buffer)
    buffer.seek(0)
    with tarfile.open(fileobj=buffer) as tar:
        names = set(tar.getnames())
    assert {
        "langgraph.json",
        "requirements.txt",
        "libs/greeting/pyproject.toml",
        ".env.example",
    } <= names
    assert DOCKERFILE_NAME in names
    assert not {
        n
        for n in names
        if re.match(r"(\.env$|\.env\.local|\.stead/|\.git/)", n) or "__pycache__" in n
    }


def test_an_unknown_deployment_type_stops_the_server_at_once() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "stead", "run", "-c", str(REPO / "examples" / "langgraph.json")],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "DEPLOYMENT_TYPE": "hybrid"},
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr == (
        "stead: error: DEPLOYMENT_TYPE must be one of standalone, self_hosted_data_plane, "
        "got 'hybrid'\n"
    )


def test_healthcheck_answers_for_a_live_server_and_fails_in_one_line(url: str) -> None:
    port = url.rsplit(":", 1)[1]
    assert stead("healthcheck", "--port", port).returncode == 0
    done = stead("healthcheck", "--port", "1")
    assert done.returncode == 1 and done.stderr.startswith(
        "stead: unhealthy: http://127.0.0.1:1/ok"
    )
