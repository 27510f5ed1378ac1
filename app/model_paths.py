"""Which folders a request may name by path: model folders and data files follow one rule.

The rule, for both kinds: where the server has a list of allowed folders for the kind
(ENTRODROP_ALLOWED_MODEL_DIRS, ENTRODROP_ALLOWED_DATA_DIRS), only paths inside it (symlinks
resolved, so none lead out). Without a list, a private server (loopback, no access token) takes
any path its user can read, as the CLI does; a shared one takes none (uploads, built-in data,
'default' and runs still work). The pages say the rule in the words of `rule_text`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from app.hub import is_shared
from app.settings import Settings
from entrodrop.data import DataError
from entrodrop.models import ModelLoadError
from entrodrop.paths import PathError, expand_user, resolve_user_path

PathKind = Literal["model", "data"]
VARIABLE = {"model": "ENTRODROP_ALLOWED_MODEL_DIRS", "data": "ENTRODROP_ALLOWED_DATA_DIRS"}
NOUN = {"model": "model folders", "data": "data files"}


@dataclass(frozen=True)
class PathRule:
    """The rule for one kind of path on this server."""

    kind: PathKind
    anywhere: bool  # a private server without a list: any readable path
    roots: tuple[Path, ...]  # the allowed folders (resolved); empty with `anywhere` or off

    @property
    def by_path(self) -> bool:
        """Whether this kind may be named by path at all."""
        return self.anywhere or bool(self.roots)

    def allows(self, full: Path) -> bool:
        """Whether a resolved path falls under the rule."""
        return self.anywhere or any(full == r or r in full.parents for r in self.roots)


def expand(path: str | Path) -> Path:
    """`~` expanded; an unknown `~user` or a NUL byte is a PathError (a ValueError: 422)."""
    return expand_user(path)


def path_rule(settings: Settings, kind: PathKind) -> PathRule:
    """The rule in force for `kind` on this server."""
    listed = settings.allowed_model_dirs if kind == "model" else settings.allowed_data_dirs
    roots = tuple(resolve_user_path(d) for d in listed)
    return PathRule(kind, anywhere=not roots and not is_shared(settings), roots=roots)


def rule_text(settings: Settings, kind: PathKind) -> str:
    """The rule in a person's words, for the pages (the same sentence on every form)."""
    rule = path_rule(settings, kind)
    noun = NOUN[kind].capitalize()
    if rule.anywhere:
        return (
            f"{noun} by path: any path this server's user can read (a private server: loopback, "
            f"no access token; set {VARIABLE[kind]} to limit it)."
        )
    if rule.roots:
        where = ", ".join(str(r) for r in rule.roots)
        return f"{noun} by path: only inside {where} ({VARIABLE[kind]})."
    return f"{noun} by path: off on this shared server (set {VARIABLE[kind]} to allow folders)."


def check_model_folder(path: Path, settings: Settings) -> Path:
    """Resolve a model folder named in a request; ModelLoadError (422) unless the rule allows it."""
    rule = path_rule(settings, "model")
    if not rule.by_path:
        raise ModelLoadError(
            "loading checkpoints by path is disabled on this shared server "
            f"(set {VARIABLE['model']}); use 'default' or a run"
        )
    try:
        full = resolve_user_path(path)
    except PathError as exc:
        raise ModelLoadError(str(exc)) from exc
    if rule.allows(full):
        return full
    raise ModelLoadError(f"{path} is outside the allowed model folders")


def check_data_path(spec: str, settings: Settings, also: Path) -> Path:
    """Resolve a data file named in a request; DataError (422) unless the rule allows it.

    `also` is a folder always allowed (the server's own uploads). A relative path is taken
    inside each allowed folder in turn (in the current folder where any path goes).
    """
    rule = path_rule(settings, "data")
    if "\x00" in spec:
        raise DataError("invalid path")
    try:
        candidate = expand(spec)
        roots = [*rule.roots, resolve_user_path(also)]
        inside = [
            full
            for root in roots
            if (full := resolve_user_path(root / candidate)) == root or root in full.parents
        ]  # an absolute candidate ignores the root: it is inside one or none
        if rule.anywhere:
            inside.append(resolve_user_path(candidate))
    except PathError as exc:
        raise DataError(str(exc)) from exc
    found = next((full for full in inside if full.exists()), None)
    if found is not None:
        return found
    if inside and rule.by_path:  # the first place it could be: its "no such file" names it
        return inside[0]
    if not rule.by_path:
        raise DataError(
            "use python-reference or upload a file: naming files by path is off on this shared "
            f"server (set {VARIABLE['data']})"
        )
    raise DataError(f"{spec} is outside the allowed data folders")
