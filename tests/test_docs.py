"""The documentation's relative links lead somewhere: to a file that exists and, with an
``#anchor``, to one of its headings (GitHub's heading slugs)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]*`")


def heading_slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped except ``-`` and
    ``_``, spaces to ``-``."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def heading_slugs(markdown: str) -> set[str]:
    prose = FENCE.sub("", markdown)
    return {heading_slug(line.lstrip("#")) for line in prose.splitlines()
            if re.match(r"#{1,6} ", line)}


def relative_links(markdown: str) -> list[str]:
    """Link targets in the prose (not in code), without URLs."""
    prose = INLINE_CODE.sub("", FENCE.sub("", markdown))
    return [target for target in LINK.findall(prose)
            if not re.match(r"[a-z][a-z0-9+.-]*:", target)]


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """``'page: target (why)'`` for each relative link of ``path`` that leads nowhere."""
    broken = []
    for target in relative_links(path.read_text()):
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part) if file_part else path
        if not dest.exists():
            broken.append(f"{path.relative_to(root)}: {target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in heading_slugs(dest.read_text()):
            broken.append(f"{path.relative_to(root)}: {target} (no such heading)")
    return broken


def test_heading_slugs_follow_github():
    assert heading_slug(" Time to quality: the README's 1,500 steps") == (
        "time-to-quality-the-readmes-1500-steps")
    assert heading_slug("Bonds drawn colder than atoms on MOSES") == (
        "bonds-drawn-colder-than-atoms-on-moses")
    assert heading_slugs("# A\n```\n# not a heading\n```\n## B c\n#hashtag\n") == {"a", "b-c"}


def test_the_checker_finds_a_broken_link(tmp_path):
    (tmp_path / "other.md").write_text("# Present\n")
    page = tmp_path / "page.md"
    page.write_text("[ok](other.md#present) [gone](missing.md) [bad](other.md#absent) "
                    "`[code](missing.md)` [web](https://example.org/x.md)\n"
                    "```\n[fenced](missing.md)\n```\n")
    assert broken_links(page, root=tmp_path) == ["page.md: missing.md (no such file)",
                                                 "page.md: other.md#absent (no such heading)"]


def test_every_relative_link_in_the_docs_leads_somewhere():
    pages = [ROOT / "README.md", ROOT / "CHANGELOG.md", ROOT / "data" / "README.md",
             *sorted((ROOT / "docs").glob("*.md"))]
    broken = [entry for page in pages for entry in broken_links(page)]
    assert not broken, broken
