"""File operations on the table store (local disk or object storage) through pyarrow.fs."""

from __future__ import annotations

import os
import posixpath
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from pyarrow import fs as pafs

from medlake.config import ConfigError

if TYPE_CHECKING:
    from medlake.config import Settings
    from medlake.tables import TableSpec


@dataclass(frozen=True)
class FileEntry:
    path: str  # filesystem path, as pyarrow.fs names it
    size: int
    mtime_ms: int


class Storage:
    """The few file operations the table layer needs, for one table root."""

    def __init__(self, root: str) -> None:
        # deltalake and pyarrow name S3 `s3://`; Spark's Hadoop connector names it `s3a://`.
        if root.startswith("s3a://"):
            root = "s3://" + root[len("s3a://") :]
        self.root_uri = root
        if "://" in root:
            self.fs, self.root = pafs.FileSystem.from_uri(root)
        else:
            self.fs, self.root = pafs.LocalFileSystem(), root
        self.root = self.root.rstrip("/")

    def spark_uri(self, relative: str = "") -> str:
        """URI of `relative` (under the root) as Spark's Hadoop file systems name it.

        `relative` is the on-disk name (Spark escapes some characters of partition values
        as `%XX` in folder names); Hadoop's `Path(String)` takes such names literally.
        """
        base = self.root_uri.rstrip("/")
        if "://" not in base:
            base = f"file://{base}"
        elif urlparse(base).scheme == "s3":
            base = "s3a" + base[2:]
        return f"{base}/{relative}" if relative else base

    def abs(self, relative: str) -> str:
        return posixpath.join(self.root, relative)

    def list_files(self, relative: str) -> list[FileEntry]:
        """Every file below `relative`, recursively; empty when the folder does not exist."""
        selector = pafs.FileSelector(self.abs(relative), recursive=True, allow_not_found=True)
        return [
            FileEntry(
                info.path, info.size or 0, int(info.mtime.timestamp() * 1000) if info.mtime else 0
            )
            for info in self.fs.get_file_info(selector)
            if info.type == pafs.FileType.File
        ]

    def list_dirs(self, relative: str) -> list[FileEntry]:
        """Sub-folders of `relative`, each with the newest modification time found inside
        (object stores keep no folder times, and a folder's own time misses deep writes)."""
        selector = pafs.FileSelector(self.abs(relative), recursive=False, allow_not_found=True)
        folders = []
        for info in self.fs.get_file_info(selector):
            if info.type != pafs.FileType.Directory:
                continue
            own = int(info.mtime.timestamp() * 1000) if info.mtime else 0
            inside = [f.mtime_ms for f in self.list_files(self.relative(info.path))]
            folders.append(FileEntry(info.path, 0, max([own, *inside])))
        return folders

    def move(self, src: str, dst: str) -> None:
        self.fs.create_dir(posixpath.dirname(dst), recursive=True)
        self.fs.move(src, dst)

    def delete_file(self, path: str) -> None:
        self.fs.delete_file(path)

    def delete_dir(self, path: str) -> None:
        info = self.fs.get_file_info(path)
        if info.type == pafs.FileType.Directory:
            self.fs.delete_dir(path)

    def relative(self, path: str) -> str:
        return posixpath.relpath(path, self.root)


def table_location(settings: Settings, spec: TableSpec) -> str:
    """Where a registered table lives: `<storage.root>/<layer>/<name>` (a local root is made
    private first: `private_root`)."""
    root = settings.storage_root.rstrip("/")
    private_root(root)
    return f"{root}/{spec.path}"


_PRIVATE: set[str] = set()


def private_root(root: str) -> None:
    """Keep a local storage root readable by this account only: created with mode 0700, and
    an existing one that group or others may enter is closed (chmod go-rwx). Every table,
    bronze and the vaults included, sits below it, so only the service account that runs the
    jobs and the query service reads the files; analysts go through the query service. On
    object storage the bucket's credentials do this (docs/security.md)."""
    if root in _PRIVATE or ("://" in root and not root.startswith("file://")):
        return
    path = Path(root.removeprefix("file://"))
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = path.stat()
    if info.st_mode & 0o077:
        if info.st_uid != os.geteuid():
            raise ConfigError(
                f"storage root {path} is open to other users (mode "
                f"{stat.S_IMODE(info.st_mode):o}) and owned by another account (uid "
                f"{info.st_uid}): run the jobs and the query service as its owner, or have it "
                f"run `chmod go-rwx {path}`"
            )
        path.chmod(stat.S_IMODE(info.st_mode) & 0o700)
    _PRIVATE.add(root)
