"""Every shell block of the docs names commands, options and paths that exist (issue 21).

A reader copies these blocks: an `acoustid-stack` sub-command or option that was renamed, a
repository path that moved, or a step that builds `.` from a folder without pyproject.toml
(after an earlier `cd`) fails for them, so it fails here first. Blocks are followed in order,
as a reader runs them, from the repository root: `cd` moves, `cp -r` and `mkdir -p` create.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import click
import pytest

from acoustid_stack.cli import cli

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted(
    path
    for path in ROOT.rglob("*.md")
    if not any(
        part.startswith(".") or part in ("node_modules", "tests")
        for part in path.relative_to(ROOT).parts
    )
)
TOP_FOLDERS = ("app/", "bench/", "charts/", "docker/", "infra/", "playbooks/", "runbooks/")


def shell_lines(page: Path) -> list[str]:
    """The command lines of a page's sh/bash blocks, continuations joined, comments cut."""
    lines: list[str] = []
    inside = False
    pending = ""
    for raw in page.read_text(encoding="utf-8").splitlines():
        stripped = raw.strip()
        if stripped.startswith("```"):
            inside = not inside and stripped[3:].strip() in ("sh", "bash", "shell", "console")
            continue
        if not inside:
            continue
        pending += stripped.removeprefix("$ ")
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        if pending:
            lines.append(pending)
        pending = ""
    return lines


def commands(line: str) -> list[list[str]]:
    """The simple commands of a line (split at &&, ||, ;, |), as words; [] when unparsable."""
    try:
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words = list(lexer)
    except ValueError:
        return []
    result: list[list[str]] = [[]]
    for word in words:
        if word.startswith("#"):
            break
        if word in ("&&", "||", ";", "|", "&", "(", ")"):
            result.append([])
        else:
            result[-1].append(word)
    return [words for words in result if words]


def check_acoustid_stack(words: list[str]) -> str | None:
    """An error when the words name no command or an option that command lacks."""
    command: click.Command = cli
    context = click.Context(cli)
    for word in words[1:]:
        if word.startswith("-"):
            name = word.split("=", 1)[0]
            known = {opt for param in command.params for opt in getattr(param, "opts", [])}
            known |= {"-h", "--help"}
            if name not in known:
                return f"`{' '.join(words)}`: {name} is not an option of that command"
            continue
        if not isinstance(command, click.Group):
            break  # an argument
        sub = command.get_command(context, word)
        if sub is None:
            if word.isupper() or "<" in word or "$" in word:
                break  # a placeholder
            return f"`{' '.join(words)}`: no command {word!r}"
        command = sub
    return None


def follow(page: Path) -> list[str]:
    problems: list[str] = []
    cwd = previous = ROOT
    created: set[Path] = set()

    def exists(path: Path) -> bool:
        return path.exists() or any(path == c or c in path.parents for c in created)

    for line in shell_lines(page):
        for words in commands(line):
            name = words[0]
            if words == ["cd", "-"]:
                cwd, previous = previous, cwd
            elif name == "cd" and len(words) == 2 and "$" not in words[1]:
                target = (cwd / words[1]).resolve()
                if not exists(target):
                    problems.append(f"`{line}`: no folder {target.relative_to(ROOT)}")
                cwd, previous = target, cwd
            elif name == "cp" and "-r" in words and len(words) >= 4:
                created.add((cwd / words[-1]).resolve())
            elif name == "mkdir":
                created |= {(cwd / w).resolve() for w in words[1:] if not w.startswith("-")}
            elif "acoustid-stack" in words and (
                error := check_acoustid_stack(words[words.index("acoustid-stack") :])
            ):
                problems.append(error)
            elif name in ("pip", "pip3") and "." in words and not (cwd / "pyproject.toml").exists():
                problems.append(f"`{line}`: run in {cwd}, which has no pyproject.toml")
            if cwd == ROOT:
                problems += [f"`{line}`: no path {w}" for w in repo_paths(words) if not exists(w)]
    return problems


def repo_paths(words: list[str]) -> list[Path]:
    """The words that name a path in the repository (no globs or placeholders)."""
    return [
        (ROOT / word.split(":")[0]).resolve()
        for word in words[1:]
        if word.startswith(TOP_FOLDERS) and not any(c in word for c in "*<$")
    ]


@pytest.mark.parametrize("page", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_shell_blocks_name_commands_options_and_paths_that_exist(page: Path) -> None:
    assert follow(page) == []


def test_the_checker_finds_a_build_run_from_the_wrong_folder(tmp_path: Path) -> None:
    page = tmp_path / "README.md"
    page.write_text(
        "```sh\ncd playbooks\npip wheel --no-deps -w dist .\nacoustid-stack backup nope\n"
        "acoustid-stack up --no-such-option\n```\n"
    )
    problems = follow(page)
    assert len(problems) == 3
    assert "no pyproject.toml" in problems[0]
    assert "no command 'nope'" in problems[1]
    assert "--no-such-option" in problems[2]


def test_the_docs_exist_and_name_commands() -> None:
    assert len(DOCS) >= 10
    named = [w for page in DOCS for line in shell_lines(page) for w in commands(line)]
    assert sum(1 for words in named if words[0] == "acoustid-stack") >= 20
