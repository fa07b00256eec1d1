"""Where the sandbox's accepted bearer tokens come from, and how to keep them off the command line.

Four sources, and the first one that gives tokens is the only one used:

1. ``--token TOKEN[=HOST]`` flags: easy, but a command line shows in ``ps`` to every user of the machine;
2. ``--token-file PATH``: one ``TOKEN[=HOST]`` per line, blank lines and ``#`` comments allowed; refused
   if group or others have any access to it (``mode & 0o077``);
3. the ``TAGMANGO_SANDBOX_TOKENS`` environment variable: ``TOKEN[=HOST]`` entries separated by commas or
   whitespace (an empty value counts as unset);
4. the default token, ``sandbox-token``.

``=HOST`` ties a token to one whitelabel host. Errors are one line and never quote a token.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path

from importer.sandbox.config import DEFAULT_TOKEN

ENV_VAR = "TAGMANGO_SANDBOX_TOKENS"


class TokenSourceError(ValueError):
    """A token source cannot be used; the message is one line and quotes no token."""


def parse_flags(items: Iterable[str]) -> dict[str, str | None]:
    """``--token`` values, read as they always were: ``TOKEN[=HOST]``, the host lowercased."""
    tokens: dict[str, str | None] = {}
    for item in items:
        token, _, tied = item.partition("=")
        tokens[token] = tied.strip().lower() or None
    return tokens


def _entries(entries: Iterable[tuple[str, str]]) -> dict[str, str | None]:
    """``(where, "TOKEN[=HOST]")`` pairs from a file or the environment; ``where`` names the entry in errors."""
    tokens: dict[str, str | None] = {}
    for where, entry in entries:
        token, sep, tied = entry.partition("=")
        token, tied = token.strip(), tied.strip().lower()
        if not token:
            raise TokenSourceError(f"{where}: no token before '='")
        if sep and not tied:
            raise TokenSourceError(f"{where}: no host after '='")
        tokens[token] = tied or None
    return tokens


def parse_env(value: str | None) -> dict[str, str | None]:
    """``TAGMANGO_SANDBOX_TOKENS``: entries separated by commas or whitespace; unset or blank gives none."""
    items = [item for item in re.split(r"[,\s]+", value or "") if item]
    return _entries((f"{ENV_VAR}, entry {n}", item) for n, item in enumerate(items, 1))


def read_token_file(path: str | os.PathLike) -> dict[str, str | None]:
    """The tokens of a ``--token-file``; refused unless only its owner may access it (``chmod 600``)."""
    name = f"--token-file {path}"
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise TokenSourceError(f"{name}: no such file") from None
    except OSError as exc:
        raise TokenSourceError(f"{name}: cannot open it ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())  # the file opened, not whatever the path names a moment later
        if not stat.S_ISREG(info.st_mode):
            raise TokenSourceError(f"{name}: not a regular file")
        if info.st_mode & 0o077:
            raise TokenSourceError(f"{name}: group or others may access it (mode {stat.S_IMODE(info.st_mode):04o}); "
                                   f"run chmod 600 {path}")
        raw = fh.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise TokenSourceError(f"{name}: not UTF-8 text") from None
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        line = re.sub(r"(^|\s)#.*", "", line).strip()  # a comment: '#' at the start or after a space
        if not line:
            continue
        if len(line.split()) > 1:
            raise TokenSourceError(f"{name}, line {number}: one TOKEN[=HOST] per line")
        entries.append((f"{name}, line {number}", line))
    tokens = _entries(entries)
    if not tokens:
        raise TokenSourceError(f"{name}: no tokens in it")
    return tokens


def resolve(flags: Iterable[str], token_file: str | os.PathLike | None,
            environ: Mapping[str, str]) -> tuple[dict[str, str | None], str]:
    """The accepted tokens and the name of their source: ``--token``, ``--token-file``, the variable, or ``default``.

    Sources after the one used are not read, so a bad file behind ``--token`` flags is not an error.
    """
    flags = list(flags)
    if flags:
        return parse_flags(flags), "--token"
    if token_file is not None:
        return read_token_file(Path(token_file)), "--token-file"
    from_env = parse_env(environ.get(ENV_VAR))
    if from_env:
        return from_env, ENV_VAR
    return {DEFAULT_TOKEN: None}, "default"


def given_sources(flags: Iterable[str], token_file: str | os.PathLike | None,
                  environ: Mapping[str, str]) -> list[str]:
    """The sources given, in order of precedence: the first is the one ``resolve`` uses, the rest are ignored."""
    present = (("--token", bool(list(flags))), ("--token-file", token_file is not None),
               (ENV_VAR, any(re.split(r"[,\s]+", environ.get(ENV_VAR) or ""))))
    return [name for name, given in present if given]
