"""Every relative link and image in README.md and docs/*.md points at a file that exists, and every
`#anchor` into a markdown page names one of its headings (GitHub's heading ids)."""
import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1[^\n]*$", re.M | re.S)
INLINE_CODE = re.compile(r"(`+).+?\1", re.S)
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)  # http:, https:, mailto:, ...


def _prose(text: str) -> str:
    """The page without its code: fenced blocks, indented blocks and inline code spans."""
    text = FENCE.sub("", text)
    text = "\n".join(line for line in text.splitlines() if not line.startswith(("    ", "\t")) or
                     line.lstrip().startswith(("-", "*", "[", "!")))
    return INLINE_CODE.sub("", text)


def _links(page: Path) -> list[str]:
    return LINK.findall(_prose(page.read_text()))


def _anchors(page: Path) -> set[str]:
    """GitHub's ids for a page's headings: lower case, punctuation but `-` and `_` dropped, spaces to `-`,
    a repeated heading suffixed -1, -2, ..."""
    seen: dict[str, int] = {}
    ids = set()
    for line in FENCE.sub("", page.read_text()).splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        ids.add(slug if n == 0 else f"{slug}-{n}")
    return ids


def test_pages_have_links():
    """The README links its documentation: a parser that found nothing would pass every test below."""
    readme = {t.split("#")[0] for t in _links(ROOT / "README.md")}
    assert {"docs/parameters.md", "docs/data.md", "docs/performance.md", "docs/app.png"} <= readme


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path):
    broken = []
    for target in _links(page):
        if EXTERNAL.match(target):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / unquote(path)).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target} (no file {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest})")
        elif not dest.is_relative_to(ROOT):
            broken.append(f"{target} (outside the repository)")
        elif anchor and dest.suffix == ".md" and anchor.lower() not in _anchors(dest):
            broken.append(f"{target} (no heading #{anchor} in {dest.relative_to(ROOT)})")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)
