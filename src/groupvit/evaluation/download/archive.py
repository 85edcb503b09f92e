"""Safe extraction of downloaded tar / zip archives.

Every member is checked before anything is written: absolute paths, `..` components, links (symbolic or hard)
that point outside the destination, and device / fifo members are refused with an UnsafeArchiveError naming the
archive and the member. Tar extraction additionally runs with Python's `filter="data"`. extract_archive() writes
into a temporary folder beside the destination and renames it into place only when complete, so a destination
either does not exist or holds the whole archive.
"""
from __future__ import annotations

import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

Select = Callable[[str], bool]


class UnsafeArchiveError(ValueError):
    """An archive member that could write outside the destination (or is not a plain file/folder/safe link)."""


def _refuse(archive: Path, member: str, reason: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(f"{archive}: refusing member {member!r}: {reason}; nothing was extracted")


def _check_name(archive: Path, name: str) -> str:
    """The member's normalised relative path, or an error for absolute paths and `..` components."""
    if not name or "\x00" in name:
        raise _refuse(archive, name, "empty or NUL in its name")
    unified = name.replace("\\", "/")
    if unified.startswith("/") or (len(unified) > 1 and unified[1] == ":"):
        raise _refuse(archive, name, "absolute path")
    parts = [p for p in unified.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _refuse(archive, name, "'..' path component (would write outside the destination)")
    return "/".join(parts)


def _check_link(archive: Path, name: str, rel: str, target: str, hard: bool) -> None:
    """A link member must resolve inside the destination (hard links: relative to the root; symlinks: to the
    member's folder). Absolute targets are refused."""
    if not target:
        raise _refuse(archive, name, "link with an empty target")
    unified = target.replace("\\", "/")
    if unified.startswith("/") or (len(unified) > 1 and unified[1] == ":"):
        raise _refuse(archive, name, f"link to the absolute path {target!r}")
    base = "" if hard else posixpath.dirname(rel)
    resolved = posixpath.normpath(posixpath.join(base, unified))
    if resolved == ".." or resolved.startswith("../"):
        raise _refuse(archive, name, f"link to {target!r} points outside the destination")


def _tar_members(archive: Path, tar: tarfile.TarFile, select: Select | None) -> list[tarfile.TarInfo]:
    chosen = []
    for member in tar.getmembers():
        rel = _check_name(archive, member.name)
        if member.isdev():  # character / block devices and fifos
            raise _refuse(archive, member.name, "device or fifo member")
        if member.issym() or member.islnk():
            _check_link(archive, member.name, rel, member.linkname, hard=member.islnk())
        elif not (member.isfile() or member.isdir()):
            raise _refuse(archive, member.name, f"unsupported member type {member.type!r}")
        if select is None or select(rel):
            chosen.append(member)
    return chosen


def _zip_members(archive: Path, zf: zipfile.ZipFile, select: Select | None) -> list[tuple[zipfile.ZipInfo, str]]:
    chosen = []
    for info in zf.infolist():
        rel = _check_name(archive, info.filename)
        mode = info.external_attr >> 16
        if mode and (stat.S_ISLNK(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode)
                     or stat.S_ISSOCK(mode)):
            raise _refuse(archive, info.filename, "link, device or fifo member")
        if rel and (select is None or select(rel)):
            chosen.append((info, rel))
    return chosen


def safe_extract(archive: str | os.PathLike, into: str | os.PathLike, select: Select | None = None) -> int:
    """Extract the (selected) members of a tar (any compression) or zip into the folder `into`.

    select(relative_path) -> bool picks members; all members are checked for safety, selected or not, before
    anything is written. Returns the number of members extracted.
    """
    archive, into = Path(archive), Path(into)
    into.mkdir(parents=True, exist_ok=True)
    root = into.resolve()
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            members = _zip_members(archive, zf, select)
            for info, rel in members:
                target = (root / rel).resolve()
                if target != root and root not in target.parents:  # e.g. through a pre-existing symlink
                    raise _refuse(archive, info.filename, "resolves outside the destination")
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            return len(members)
    try:
        tar = tarfile.open(archive, "r:*")
    except tarfile.TarError as err:
        raise ValueError(f"{archive}: not a tar or zip archive ({err})") from err
    with tar:
        members = _tar_members(archive, tar, select)
        try:
            tar.extractall(root, members=members, filter="data")
        except tarfile.FilterError as err:  # belt and braces: our checks should have caught it first
            raise _refuse(archive, getattr(err, "tarinfo", None).name if getattr(err, "tarinfo", None) else "?",
                          str(err)) from err
    return len(members)


def extract_archive(archive: str | os.PathLike, dest: str | os.PathLike, select: Select | None = None) -> Path:
    """Extract into a temporary folder beside dest, then rename it to dest (which must not exist, or be empty)."""
    archive, dest = Path(archive), Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise FileExistsError(f"{dest} already exists and is not empty; move it away to extract {archive} there")
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.extract-", dir=dest.parent))
    try:
        safe_extract(archive, tmp, select)
        if dest.exists():
            dest.rmdir()
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


__all__ = ["UnsafeArchiveError", "extract_archive", "safe_extract"]
