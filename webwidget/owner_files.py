"""Files a site owner names in the configuration: found only inside the widget's folder.

A widget's folder is the folder of the widgets file that lists it (the working directory
for the `default` widget of the environment). A stylesheet, an avatar or a template folder
is looked up there by its path with `..` resolved as text (never through the file system),
must stay inside the folder, and no part of its way there may be a symbolic link: webwidget
serves these files to anyone with public caching, so a name like `app.env`, `../secrets`
or a link to `/etc` must stop start-up instead of publishing what it points at.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path


class OwnerFileError(ValueError):
    """A configured file cannot be used; the message says which and why, in one line."""


def widget_folder(base_dir: Path | None) -> Path:
    """The folder owner files are resolved in: `base_dir`, else the working directory."""
    return (base_dir or Path.cwd()).resolve()


def path_inside(folder: Path, value: str) -> Path:
    """`value` (relative to `folder`, or absolute) as a path inside `folder` with no link on
    the way; OwnerFileError otherwise."""
    raw = Path(value.strip())
    # normpath works on the text: "a/../b" is "b" even when "a" is a link elsewhere.
    candidate = Path(os.path.normpath(raw if raw.is_absolute() else folder / raw))
    if candidate == folder or not candidate.is_relative_to(folder):
        raise OwnerFileError(f"{str(candidate)!r} is not inside {str(folder)!r}")
    step = folder
    for part in candidate.relative_to(folder).parts:
        step = step / part
        if step.is_symlink():
            raise OwnerFileError(
                f"{str(step)!r} is a symbolic link; put the file itself inside {str(folder)!r}"
            )
    return candidate


def read_owner_file(
    folder: Path, value: str, *, suffixes: Iterable[str], limit: int
) -> tuple[Path, bytes]:
    """Read a regular file with one of `suffixes` inside `folder` (see path_inside)."""
    path = path_inside(folder, value)
    allowed = tuple(suffixes)
    if path.suffix.lower() not in allowed:
        raise OwnerFileError(f"{str(path)!r} is not a {' or '.join(allowed)} file")
    try:
        # O_NOFOLLOW: a link put in place after the check above is refused here too.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise OwnerFileError(f"{str(path)!r} does not exist") from None
    except OSError as exc:
        raise OwnerFileError(f"{str(path)!r} cannot be read: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise OwnerFileError(f"{str(path)!r} is not a file")
        if info.st_size > limit:
            raise OwnerFileError(f"{str(path)!r} is over {limit // 1024} KB")
        return path, handle.read(limit + 1)


def folder_inside(folder: Path, value: str) -> Path:
    """A folder inside `folder` (see path_inside) holding no symbolic link anywhere below."""
    path = path_inside(folder, value)
    if not path.is_dir():
        raise OwnerFileError(f"{str(path)!r} is not a folder")
    refuse_links_below(path)
    return path


def refuse_links_below(path: Path) -> None:
    """OwnerFileError naming the first symbolic link anywhere under the folder `path`."""
    for root, dirs, files in os.walk(path):
        for name in sorted(dirs + files):
            if (Path(root) / name).is_symlink():
                raise OwnerFileError(
                    f"{str(Path(root) / name)!r} is a symbolic link; webwidget serves what is "
                    "in this folder, so put the file itself there"
                )
