"""MkDocs hooks building the documentation site from ``docs/``, the README and the code.

- the README becomes the home page;
- one page per learner, the learners index, the CLI reference and one page per committed
  benchmark table are generated (:mod:`pages`);
- links to repository files outside ``docs/`` point at their pages on the site where there is
  one (benchmark tables and curves), else become the file's path in code font;
- the navigation is built here, so a new learner or benchmark adds its page by itself.
"""

from __future__ import annotations

import posixpath
import re
import sys
from pathlib import Path

from mkdocs.structure.files import File, Files

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pages

from biocredit.cli import _parser
from biocredit.learners.registry import list_learners

ROOT = pages.ROOT
_LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")
_RESULT = re.compile(r"experiments/results/([^/]+)/(table\.md|curves\.png)$")

HAND_WRITTEN = [
    ("Learners", ["learners.md", "plausibility.md", "alignment.md"]),
    ("Agents", ["agents.md", "multiagent.md"]),
    ("Stable-Baselines3", ["sb3.md"]),
    ("CLI", ["cli.md", "cli_reference.md"]),
    ("Reliability", ["reliability.md", "bad_inputs.md"]),
    ("Benchmarks", ["benchmarks.md", "mujoco.md"]),
]


def benches() -> list[Path]:
    return sorted(p.parent for p in pages.RESULTS.glob("*/table.md"))


def on_config(config):
    """The navigation: home, hand-written pages by topic, generated pages, research notes."""
    docs = Path(config["docs_dir"])
    notes = sorted(p.relative_to(docs).as_posix() for p in (docs / "notes").glob("*.md"))
    nav: list = [{"Home": "index.md"}]
    for section, files in HAND_WRITTEN:
        nav.append({section: list(files)})
    nav[1]["Learners"] += [
        {"All learners": "learners/index.md"},
        *[{name: f"learners/{name}.md"} for name in list_learners()],
    ]
    tables = [{b.name: f"results/{b.name}.md"} for b in benches()]
    nav.append({"Benchmark tables": [{"Index": "results/index.md"}, *tables]})
    nav.append({"Research notes": notes})
    config["nav"] = nav
    return config


def on_files(files: Files, config) -> Files:
    """Add the generated pages."""

    def add(uri: str, content: str | bytes) -> None:
        files.append(File.generated(config, uri, content=content))

    add("index.md", (ROOT / "README.md").read_text())
    add("cli_reference.md", pages.cli_reference(_parser()))
    add("learners/index.md", pages.learners_index())
    for name in list_learners():
        add(f"learners/{name}.md", pages.learner_page(name))
    add("results/index.md", (pages.RESULTS / "README.md").read_text())
    for bench in benches():
        add(f"results/{bench.name}.md", pages.results_page(bench))
        if (bench / "curves.png").exists():
            add(f"results/{bench.name}.png", (bench / "curves.png").read_bytes())
    return files


def on_page_markdown(markdown: str, page, config, files: Files) -> str:
    """Links to repository files: their site page when there is one, else the path as code."""
    uri = page.file.src_uri
    if page.file.generated_by and uri != "index.md":
        return markdown  # generated pages link within the site already
    # where the page's text lives in the repository (the README sits at the root)
    source_dir = "" if uri == "index.md" else posixpath.dirname(f"docs/{uri}")

    def rewrite(match: re.Match) -> str:
        bang, text, target = match.groups()
        if re.match(r"^[a-z]+:|^#|^/", target):
            return match.group(0)
        path, _, anchor = target.partition("#")
        repo_path = posixpath.normpath(posixpath.join(source_dir, path))
        site_path = _site_path(repo_path)
        if site_path is None:
            return f"{text} (`{repo_path}`)" if not bang else f"`{repo_path}`"
        relative = posixpath.relpath(site_path, posixpath.dirname(uri) or ".")
        return f"{bang}[{text}]({relative}{'#' + anchor if anchor else ''})"

    return _LINK.sub(rewrite, markdown)


def _site_path(repo_path: str) -> str | None:
    """The site file showing a repository file, or None when the site has none."""
    if repo_path.startswith("docs/") and (ROOT / repo_path).exists():
        return repo_path.removeprefix("docs/")
    if repo_path == "README.md":
        return "index.md"
    if repo_path == "experiments/results/README.md":
        return "results/index.md"
    result = _RESULT.search(repo_path)
    if result and (ROOT / repo_path).exists():
        bench, kind = result.groups()
        return f"results/{bench}.{'md' if kind == 'table.md' else 'png'}"
    return None
