"""The documentation site: its Python examples run, and ``mkdocs build --strict`` passes.

Every ```python block of docs/index.md, docs/tutorial/*.md and docs/concepts/*.md runs:
each page's blocks, in order, as one script file in a fresh folder, in a subprocess (so an
example that starts a processor, a process pool or a server really does). A block is left
out only when its fence carries an explicit marker, ``title="not run: <why>"``. Shell
blocks (```bash) are never run.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
RUN_PAGES = sorted(
    [DOCS / "index.md", *DOCS.glob("tutorial/*.md"), *DOCS.glob("concepts/*.md")],
    key=lambda path: path.relative_to(DOCS).as_posix(),
)
PAGE_TIMEOUT = 300.0

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+)(?P<info>[^\n`]*)$")
_NOT_RUN = re.compile(r'title="not run: [^"]+"')


def python_blocks(markdown: str) -> list[str]:
    """The ```python blocks of a page that are meant to run, in page order.

    Raises:
        ValueError: a fence is never closed, or a block is marked not-run without a reason.
    """
    blocks: list[str] = []
    lines = markdown.splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        index += 1
        if opening is None:
            continue
        indent, fence = opening["indent"], opening["fence"]
        info = opening["info"].strip()
        body: list[str] = []
        while index < len(lines) and lines[index].strip() != fence:
            body.append(lines[index].removeprefix(indent))
            index += 1
        if index == len(lines):
            raise ValueError(f"a {fence}{info} block is never closed")
        index += 1
        language = info.split(maxsplit=1)[0] if info else ""
        if language not in {"python", "py"}:
            continue
        if "not run" in info:
            if not _NOT_RUN.search(info):
                raise ValueError(f'mark a block not run as title="not run: <why>", got {info!r}')
            continue
        blocks.append("\n".join(body) + "\n")
    return blocks


def page_script(page: Path) -> str:
    """The page's runnable blocks joined into one script, each headed by where it came from."""
    parts = [
        f"# --- {page.name}, block {number}\n{block}"
        for number, block in enumerate(python_blocks(page.read_text(encoding="utf-8")), 1)
    ]
    return "\n".join(parts)


EXAMPLE_PAGES = [page for page in RUN_PAGES if python_blocks(page.read_text(encoding="utf-8"))]


def test_fenced_blocks_are_found_and_markers_respected() -> None:
    markdown = (
        "text\n```python\nx = 1\n```\n"
        "```bash\nrm -rf /\n```\n"
        '```python title="not run: needs a GPU"\nraise SystemExit(1)\n```\n'
        "- a list item\n\n    ```python\n    y = x + 1\n    ```\n"
    )
    assert python_blocks(markdown) == ["x = 1\n", "y = x + 1\n"]


@pytest.mark.parametrize(
    ("markdown", "message"),
    [
        ("```python\nx = 1\n", "is never closed"),
        ('```python title="not run"\nx = 1\n```\n', 'as title="not run: <why>"'),
    ],
    ids=["unclosed", "marker-without-reason"],
)
def test_malformed_blocks_are_refused(markdown: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        python_blocks(markdown)


def test_the_tutorial_and_the_concept_pages_have_examples() -> None:
    names = {page.relative_to(DOCS).as_posix() for page in EXAMPLE_PAGES}
    assert "tutorial/getting-started.md" in names
    assert {"concepts/priorities.md", "concepts/dependencies.md", "concepts/lanes.md"} <= names


@pytest.mark.timeout(PAGE_TIMEOUT + 60)
@pytest.mark.parametrize("page", EXAMPLE_PAGES, ids=lambda page: page.relative_to(DOCS).as_posix())
def test_page_examples_run(page: Path, tmp_path: Path) -> None:
    script = page_script(page)
    path = tmp_path / f"{page.stem.replace('-', '_')}_example.py"
    path.write_text(script, encoding="utf-8")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), *filter(None, [env.get("PYTHONPATH")])])
    done = subprocess.run(
        [sys.executable, str(path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=PAGE_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, (
        f"the examples of {page.relative_to(ROOT)} failed (exit {done.returncode}):\n"
        f"{done.stderr[-4000:]}\n--- stdout:\n{done.stdout[-2000:]}"
    )


@pytest.mark.timeout(300)
def test_site_builds_strictly(tmp_path: Path) -> None:
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip("mkdocs is not installed: pip install 'async-processor[docs]'")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stderr[-6000:]}"
    assert (tmp_path / "reference" / "processor" / "index.html").is_file()
