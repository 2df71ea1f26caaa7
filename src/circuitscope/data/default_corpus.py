"""The offline default corpus: human-written English installed from Debian packages.

`setup.sh` installs them when it runs as root with apt-get:

- python3-doc: the Python documentation's reST sources (English prose with some
  code), PSF licence, in /usr/share/doc/python3.X/html/_sources/**/*.txt;
- fortunes (and fortunes-min): quotations, jokes and short texts collected for
  `fortune`, BSD-licensed, one text per `%`-separated entry in
  /usr/share/games/fortunes/*.

No file is downloaded at run time. `find_default_corpus` says what is installed;
an empty answer means the caller must fall back (an HF dataset or the user's files).
"""

from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path

PYTHON_DOC_GLOB = "/usr/share/doc/python3*/html/_sources"
FORTUNE_FOLDER = "/usr/share/games/fortunes"
FORTUNE_SKIP = frozenset({"art", "ascii-art", "translate-me"})
"""Fortune files that are pictures or not English prose."""
INSTALL_HINT = "install it with: apt-get install python3-doc fortunes (or ./setup.sh as root)"


@dataclass
class DefaultCorpus:
    """The installed parts of the default corpus."""

    python_docs: list[Path] = field(default_factory=list)
    """reST source files of the Python documentation."""
    fortune_files: list[Path] = field(default_factory=list)
    """`%`-separated fortune files."""

    @property
    def empty(self) -> bool:
        return not self.python_docs and not self.fortune_files

    def describe(self) -> str:
        return (
            f"default corpus: {len(self.python_docs)} Python documentation files, "
            f"{len(self.fortune_files)} fortune files"
        )


def find_default_corpus(
    python_doc_glob: str = PYTHON_DOC_GLOB, fortune_folder: str = FORTUNE_FOLDER
) -> DefaultCorpus:
    """Look for the installed Debian files; only the newest Python's docs are used."""
    corpus = DefaultCorpus()
    doc_roots = sorted(glob.glob(python_doc_glob))
    if doc_roots:
        corpus.python_docs = sorted(Path(doc_roots[-1]).rglob("*.txt"))
    folder = Path(fortune_folder)
    if folder.is_dir():
        corpus.fortune_files = sorted(
            path
            for path in folder.iterdir()
            if path.is_file()
            and not path.suffix
            and path.name not in FORTUNE_SKIP
            and not path.name.startswith(".")
        )
    return corpus


def split_fortunes(text: str) -> list[str]:
    """The entries of one fortune file (separated by lines holding only `%`)."""
    entries: list[str] = []
    current: list[str] = []
    for line in text.splitlines():
        if line.strip() == "%":
            entries.append("\n".join(current).strip())
            current = []
        else:
            current.append(line)
    entries.append("\n".join(current).strip())
    return [entry for entry in entries if entry]
