"""The Dockerfile of a project's image: Stead's image with the project's dependencies and
graphs added, so that `stead run`, `stead worker` and `stead migrate` run it unchanged."""

from __future__ import annotations

import shlex

from stead import __version__
from stead.images.project import ImageProject

DEFAULT_BASE_IMAGE = f"stead:{__version__}"
HEADER = "# Written by `stead dockerfile`; write it again rather than edit it."
# Stead's image records the versions it was built with; installing the project's
# requirements under them keeps a requirement from replacing a library Stead needs.
CONSTRAINTS = "/opt/stead/constraints.txt"
# The non-root user of Stead's image (deploy/docker/Dockerfile).
STEAD_USER = "10001:10001"
_PIP_INSTALL = f"pip install --no-cache-dir -c {CONSTRAINTS}"


def render_dockerfile(project: ImageProject, base_image: str = DEFAULT_BASE_IMAGE) -> str:
    home = f"/deps/{project.name}"
    lines = [
        HEADER,
        f"FROM {base_image}",
        "",
        "# Installing needs root; the image runs as Stead's user.",
        "USER 0:0",
    ]
    lines += _requirements_steps(project, home)
    lines += ["", "# The project: graphs, local packages, langgraph.json.", f"COPY . {home}"]
    lines += [
        f"RUN {_PIP_INSTALL} -e {_inside(home, d.relative)}" for d in project.local if d.is_package
    ]
    lines += [
        "",
        "# The env file stays out of the image (it holds secrets): pass its variables to the",
        "# container instead (docker run --env-file, compose env_file).",
        f"ENV STEAD_CONFIG={home}/{project.config_path.name} STEAD_ENV_FILE_OPTIONAL=true",
        f"WORKDIR {home}",
        f"USER {STEAD_USER}",
        "",
    ]
    return "\n".join(lines)


def _requirements_steps(project: ImageProject, home: str) -> list[str]:
    """Requirements go in before the code, so that a change to the code alone rebuilds one layer."""
    steps: list[str] = []
    for dependency in project.local:
        if dependency.has_requirements:
            file = _inside(home, dependency.relative, "requirements.txt")
            source = _inside(".", dependency.relative, "requirements.txt")
            steps += [f"COPY {source} {file}", f"RUN {_PIP_INSTALL} -r {file}"]
    if project.requirements:
        named = " ".join(shlex.quote(r) for r in project.requirements)
        steps.append(f"RUN {_PIP_INSTALL} {named}")
    if steps:
        steps.insert(0, "# The project's requirements, under the versions Stead was built with.")
        steps.insert(0, "")
    return steps


def _inside(root: str, relative: str, *rest: str) -> str:
    parts = [root] + ([] if relative == "." else [relative]) + list(rest)
    return "/".join(parts)
