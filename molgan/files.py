"""Output files: written whole or not at all, and checked before any long work starts.

Every file or folder molgan writes goes through :func:`atomic_output`: the content is written
to a temporary name beside the target (``.<name>.<pid>.tmp``) and renamed onto it only once
complete, so an interrupted command leaves the previous output, or nothing, never a partial
file that looks whole. :func:`check_output` tells a user about an impossible output location
(a parent that is a file, a read-only folder, the input file itself, an unknown suffix) in
one line, before sampling, training or evaluating for minutes.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


class OutputError(ValueError):
    """An output location that cannot be written (one-line message naming it)."""


def temporary_name(path: Path) -> Path:
    """The temporary sibling of ``path`` this process writes before renaming."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextmanager
def atomic_output(path: str | os.PathLike[str], make_parent: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write (a file, or a folder the caller creates); on success it
    is renamed to ``path`` (replacing a file there), on any exception it is removed.

    Raises:
        OutputError: ``path`` is an existing folder while a file is written, or the reverse.
    """
    path = Path(path)
    if make_parent:
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        yield tmp
        if tmp.is_dir() and path.is_dir():
            shutil.rmtree(path)  # a folder is replaced whole
        os.replace(tmp, path)
    finally:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """``Path(path).write_text(text)``, all or nothing."""
    with atomic_output(path) as tmp:
        tmp.write_text(text)


def _nearest_existing(path: Path) -> Path:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def check_output(
    path: str | os.PathLike[str] | None,
    flag: str,
    suffixes: Sequence[str] | None = None,
    inputs: Sequence[str | os.PathLike[str] | None] = (),
    folder: bool = False,
) -> None:
    """Raise :class:`OutputError` in one line if ``path`` could not be written later.

    Checks, without writing anything: the suffix is one of ``suffixes``; ``path`` is not one
    of ``inputs``; a file target is not a folder (``folder=True``: a folder target is not a
    file); the nearest existing ancestor is a folder this process may write into.
    """
    if path is None:
        return
    target = Path(path)
    where = f"{flag} {path}"
    for source in inputs:
        if source is not None and target.exists() and Path(source).exists() and \
                target.resolve() == Path(source).resolve():
            raise OutputError(f"{where} is an input file; choose another output")
    if folder and target.exists() and not target.is_dir():
        raise OutputError(f"{where} is a file, not a folder")
    if not folder and target.is_dir():
        raise OutputError(f"{where} is a folder; give a file name")
    if suffixes is not None and target.suffix.lower() not in suffixes:
        raise OutputError(f"{where}: unknown file type {target.suffix or '(none)'!r}; use "
                          f"{', '.join(suffixes)}")
    ancestor = _nearest_existing(target if folder else target.parent)
    if not ancestor.is_dir():
        raise OutputError(f"{where}: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputError(f"{where}: cannot write into {ancestor} (permission denied)")
