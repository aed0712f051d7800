"""sweep.walk and the exclusion globs, on real files in tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.sources.sweep import Excluder, walk
from agent.values import ArrivalCause


def _tree(root: Path) -> None:
    (root / "a" / "b").mkdir(parents=True)
    (root / "top.core").write_bytes(b"1")
    (root / "a" / "one.dmp").write_bytes(b"2")
    (root / "a" / "b" / "two.tmp.partial").write_bytes(b"3")
    (root / "a" / "b" / "three.dmp").write_bytes(b"4")


def test_walk_yields_every_regular_file_with_its_root_and_cause(tmp_path: Path) -> None:
    """Every regular file under the root comes out once, with the root and the requested cause."""
    _tree(tmp_path)
    os.mkfifo(tmp_path / "a" / "fifo")
    arrivals = list(walk([str(tmp_path)], cause=ArrivalCause.OVERFLOW_RESCAN))
    assert sorted(os.path.relpath(a.path, tmp_path) for a in arrivals) == [
        "a/b/three.dmp",
        "a/b/two.tmp.partial",
        "a/one.dmp",
        "top.core",
    ]
    assert {a.root for a in arrivals} == {str(tmp_path)}
    assert {a.cause for a in arrivals} == {ArrivalCause.OVERFLOW_RESCAN}


def test_walk_never_follows_symlinks_to_files_or_folders(tmp_path: Path) -> None:
    """A symlink to /etc/passwd or to a folder outside the tree is not followed."""
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.pem").write_bytes(b"x")
    (root / "passwd").symlink_to("/etc/passwd")
    (root / "etc").symlink_to("/etc")
    (root / "out").symlink_to(outside)
    (root / "real").write_bytes(b"y")
    assert [os.path.basename(a.path) for a in walk([str(root)])] == ["real"]


def test_walk_does_not_follow_a_root_that_is_a_symlink(tmp_path: Path) -> None:
    """A root given as a symlink is reported and not entered."""
    (tmp_path / "link").symlink_to("/etc")
    problems: list[tuple[str, str]] = []
    assert (
        list(walk([str(tmp_path / "link")], on_problem=lambda p, r: problems.append((p, r)))) == []
    )
    assert problems == [(str(tmp_path / "link"), "is a symbolic link; not followed")]


def test_walk_reports_an_unreadable_folder_and_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder that cannot be listed is reported through on_problem; its siblings are still walked."""
    _tree(tmp_path)
    problems: list[tuple[str, str]] = []
    real_scandir = os.scandir

    def scandir(path: str) -> object:
        if path.endswith("/a/b"):
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    # root reads any folder whatever its mode, so the refusal is injected at os.scandir
    monkeypatch.setattr(os, "scandir", scandir)
    names = sorted(
        os.path.basename(a.path)
        for a in walk([str(tmp_path)], on_problem=lambda p, r: problems.append((p, r)))
    )
    assert names == ["one.dmp", "top.core"]
    assert problems == [(str(tmp_path / "a" / "b"), "Permission denied")]


def test_walk_of_a_single_file_yields_it(tmp_path: Path) -> None:
    """A path that is a regular file is yielded as itself."""
    f = tmp_path / "f"
    f.write_bytes(b"1")
    assert [a.path for a in walk([str(f)])] == [str(f)]


def test_exclusions_match_names_relative_paths_and_prune_folders(tmp_path: Path) -> None:
    """Globs match the bare name, the path relative to the root (with **), and prune whole folders."""
    _tree(tmp_path)
    names = lambda ex: sorted(  # noqa: E731
        os.path.relpath(a.path, tmp_path) for a in walk([str(tmp_path)], exclude=ex)
    )
    assert names(["*.tmp.partial"]) == ["a/b/three.dmp", "a/one.dmp", "top.core"]
    assert names(["a/b"]) == ["a/one.dmp", "top.core"]
    assert names(["a/**/*.dmp"]) == ["a/b/two.tmp.partial", "a/one.dmp", "top.core"]
    assert names(["a/**"]) == ["top.core"]
    assert names(["./top.core"]) == ["a/b/three.dmp", "a/b/two.tmp.partial", "a/one.dmp"]


def test_excluder_with_no_patterns_excludes_nothing() -> None:
    """An empty exclusion list is falsy and matches nothing."""
    ex = Excluder([])
    assert not ex
    assert not ex.excluded("/r", "/r/anything")
