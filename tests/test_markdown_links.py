"""Every markdown file in the repository points only inside it: a reader of a clone can follow
each link, and no path names a file on the machine it was written on."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# [text](target) and ![alt](target); the target ends at a space (a title may follow) or ")".
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)")
# A path, in a link, code or prose, that climbs out of the repository or starts at a home or
# work folder of the machine it was written on.
OUTSIDE_PATH = re.compile(
    r"(?:^|[\s(`'\"=])(?:\.\./|~/|/(?:work|home|root|Users)/)\S*", re.MULTILINE
)


def markdown_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.md"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [REPO_ROOT / name for name in listed if (REPO_ROOT / name).exists()]


def test_the_readme_is_checked() -> None:
    assert REPO_ROOT / "README.md" in markdown_files()


@pytest.mark.parametrize(
    "document", markdown_files(), ids=lambda path: str(path.relative_to(REPO_ROOT))
)
def test_links_stay_inside_the_repository(document: Path) -> None:
    text = document.read_text()
    problems = []
    for target in LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL (https:, mailto:) or an anchor in the same page
        resolved = (document.parent / target.split("#")[0]).resolve()
        if not resolved.is_relative_to(REPO_ROOT) or not resolved.exists():
            problems.append(f"link {target!r} is not a file in the repository")
    for path in OUTSIDE_PATH.finditer(text):
        problems.append(f"{path.group().strip()!r} names a path outside the repository")
    assert problems == []
