"""The paper is cited one way everywhere a reader meets it: the README, the documentation,
`selfinstruct --help`, the code's docstrings and the dataset card, with the year of its
publication (ACL 2023; the arXiv preprint, 2212.10560, is from 2022)."""

from __future__ import annotations

import re

from conftest import ROOT, cli

PACKAGE = ROOT / "src" / "selfinstruct"
CARD = PACKAGE / "templates" / "card" / "README.md"
CITED = re.compile(r"Wang et al\.,\s+(\d{4})")


def cited_years(text: str) -> set[str]:
    return set(CITED.findall(text))


def places() -> dict[str, str]:
    """Every text that cites the paper by name, by where it is."""
    files = [ROOT / "README.md", CARD, *(ROOT / "docs").rglob("*.md"), *PACKAGE.rglob("*.py")]
    texts = {str(path.relative_to(ROOT)): path.read_text(encoding="utf-8") for path in files}
    texts["selfinstruct --help"] = cli("--help").stdout
    return {place: text for place, text in texts.items() if CITED.search(text)}


def test_the_paper_has_one_year_everywhere() -> None:
    found = places()
    assert {"README.md", "docs/index.md", "selfinstruct --help"} <= set(found)
    assert str(CARD.relative_to(ROOT)) in found
    bibtex_year = re.search(r'year = "(\d{4})"', CARD.read_text(encoding="utf-8"))
    assert bibtex_year is not None
    years = {place: cited_years(text) for place, text in found.items()}
    assert years == {place: {bibtex_year.group(1)} for place in found}


def test_the_readme_names_the_preprint_too() -> None:
    assert "arXiv:2212.10560" in (ROOT / "README.md").read_text(encoding="utf-8")
