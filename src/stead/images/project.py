"""What an image of a project needs from its langgraph.json: the folder to copy, the local
folders and PyPI requirements to install, and the graph files that must be there."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from stead.config import ConfigError, parse_graphs, read_config_file


@dataclass(frozen=True)
class LocalDependency:
    """A folder of the project named in `dependencies` (`.`, `./libs/tools`)."""

    relative: str  # POSIX path from the project folder, "." for the folder itself
    has_requirements: bool
    is_package: bool  # it has a pyproject.toml or setup.py: pip installs it


@dataclass(frozen=True)
class ImageProject:
    config_path: Path
    name: str  # the folder under /deps in the image
    local: tuple[LocalDependency, ...]
    requirements: tuple[str, ...]  # PyPI requirement strings

    @property
    def directory(self) -> Path:
        return self.config_path.parent


def read_image_project(config: str | Path) -> ImageProject:
    path = Path(config).resolve()
    raw = read_config_file(path)
    graphs = parse_graphs(raw.get("graphs"), path)
    dependencies = raw.get("dependencies") or []
    if not isinstance(dependencies, list) or not all(isinstance(d, str) for d in dependencies):
        raise ConfigError(f"{path}: 'dependencies' must be a list of strings")
    directory = path.parent
    for graph_id, spec in graphs.items():
        _require_graph_file(directory, graph_id, spec)
    local = [_local_dependency(directory, d) for d in dependencies if _is_local(d)]
    return ImageProject(
        config_path=path,
        name=_image_folder_name(directory),
        local=tuple(local),
        requirements=tuple(d for d in dependencies if not _is_local(d)),
    )


def _is_local(dependency: str) -> bool:
    return dependency == "." or dependency.startswith(("./", "../", "/"))


def _local_dependency(directory: Path, dependency: str) -> LocalDependency:
    folder = (directory / dependency).resolve()
    if not folder.exists():
        raise ConfigError(f"dependency {dependency!r} in langgraph.json does not exist: {folder}")
    if not folder.is_dir():
        raise ConfigError(f"dependency {dependency!r} in langgraph.json must be a folder")
    if not folder.is_relative_to(directory):
        raise ConfigError(
            f"dependency {dependency!r} is outside the project folder {directory}:"
            " an image can only copy what is inside it"
        )
    return LocalDependency(
        relative=folder.relative_to(directory).as_posix(),
        has_requirements=(folder / "requirements.txt").is_file(),
        is_package=(folder / "pyproject.toml").is_file() or (folder / "setup.py").is_file(),
    )


def _require_graph_file(directory: Path, graph_id: str, spec: str) -> None:
    """A graph named by its file must have that file inside the project (one named by a
    module comes from an installed package, which only the build can check)."""
    file = spec.rsplit(":", 1)[0]
    if not file.endswith(".py"):
        return
    target = (directory / file).resolve()
    if not target.is_relative_to(directory):
        raise ConfigError(f"graph {graph_id!r}: {file} is outside the project folder {directory}")
    if not target.is_file():
        raise ConfigError(f"graph {graph_id!r}: file {file} not found in {directory}")


def _image_folder_name(directory: Path) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "-", directory.name) or "project"
