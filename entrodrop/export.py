"""Export a run's model as a Hugging Face model folder, with a model card that says what it is.

``export_run(run_dir, "best", out)`` writes ``out/`` with the weights (safetensors), config,
tokenizer and generation config of the run's final model, best checkpoint or a step's
checkpoint; a LoRA run gives its adapter alone (``adapter_config.json`` naming the base model's
folder) or, with ``merge=True``, the base with the adapter merged into plain weights. Beside
them: ``README.md`` (the model card: base model, method and every EntroDrop parameter, the data,
the training settings, best and final metrics, the command that reproduces the run and the
``huggingface-cli upload`` line, printed, never run) and ``entrodrop_run_config.json`` (the run's
config, for ``entrodrop train --config``). ``from_pretrained(out)`` loads it, and so does
``entrodrop score --model out``. The CLI (``entrodrop export``) and the server's download both
call this module.
"""

from __future__ import annotations

import io
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from entrodrop import runfolder as rf
from entrodrop.config import RunConfig
from entrodrop.export_card import RUN_CONFIG, card_text, metrics_at

CARD = "README.md"
GENERATION_CONFIG = "generation_config.json"
# What a model folder may carry over from a run's model/ or checkpoint: weights as safetensors,
# JSON configs, tokenizer files. Never pickles (optimizer.pt, rng_state.pth, training_args.bin)
# and none of the Trainer's or our bookkeeping.
KEPT_SUFFIXES = (".json", ".safetensors", ".txt", ".model", ".jinja", ".tiktoken")
LEFT_OUT = (rf.TRAINER_STATE, "entrodrop_source.json")
LEFT_OUT_PREFIXES = ("entrodrop_state_", ".")


class ExportError(ValueError):
    """A run that cannot be exported as asked, with a message meant for a person."""


@dataclass
class Export:
    """What an export wrote: the folder, the checkpoint it came from and the card's facts."""

    folder: Path
    run_id: str
    checkpoint: str  # "final", "best" or the step, as asked
    source: Path  # the run's model/ or checkpoint-<step>/ folder
    step: int | None  # the exported weights' training step
    kind: str  # "full", "adapter" or "merged"
    files: list[str] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        return sum((self.folder / name).stat().st_size for name in self.files)

    def upload_command(self, repo: str = "<your-name>/<model-name>") -> str:
        """The hub upload line (the user runs it; EntroDrop never uploads)."""
        return f"huggingface-cli upload {repo} {self.folder} ."

    def to_dict(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "run_id": self.run_id,
            "checkpoint": self.checkpoint,
            "source": str(self.source),
            "step": self.step,
            "kind": self.kind,
            "files": self.files,
            "bytes": self.bytes,
            "upload_command": self.upload_command(),
        }


# ---------------------------------------------------------------- what to export


def source_folder(run_dir: Path, which: rf.Which) -> Path:
    """The run's folder for `which` (final, best or a step), or an ExportError saying why not."""
    if not run_dir.is_dir() or not (run_dir / rf.CONFIG).is_file():
        raise ExportError(f"{run_dir} is not a run folder (no {rf.CONFIG})")
    try:
        return rf.run_checkpoint(run_dir, which)
    except ValueError as exc:
        raise ExportError(str(exc)) from None


def is_adapter(folder: Path) -> bool:
    return all((folder / name).is_file() for name in rf.ADAPTER_FILES)


def source_step(run_dir: Path, source: Path) -> int | None:
    """The training step of a model/ (the run's last) or checkpoint-<step>/ folder."""
    if source.name == rf.MODEL:
        steps = (rf.read_json(run_dir / rf.SUMMARY) or {}).get("steps")
        return steps if isinstance(steps, int) else None
    return rf.checkpoint_step(source)


def estimate_bytes(run_dir: Path, which: rf.Which, merge: bool = False) -> int:
    """About how many bytes an export writes, at most (to check the free disk before starting)."""
    source = source_folder(run_dir, which)
    total = sum(p.stat().st_size for p in _kept_files(source))
    if merge and is_adapter(source):
        total += _merged_bytes(run_dir)
    return total


def _merged_bytes(run_dir: Path) -> int:
    """At most the size of a merged export: the base's safetensors, twice (a bf16 base is
    written in float32); 0 for a base this machine has no files of."""
    from entrodrop.models import ModelLoadError, resolve_spec

    try:
        where, is_local = resolve_spec(run_config(run_dir).model)
    except ModelLoadError as exc:
        raise ExportError(f"cannot find the base model: {exc}") from None
    if not is_local:
        return 0
    return 2 * sum(p.stat().st_size for p in Path(where).glob("*.safetensors"))


def run_config(run_dir: Path) -> RunConfig:
    """The run's RunConfig (an ExportError for a config this version cannot read)."""
    try:
        return rf.RunFolder(run_dir, writer=False).read_config()
    except (OSError, ValueError) as exc:
        raise ExportError(f"cannot read {run_dir / rf.CONFIG}: {exc}") from None


def _kept_files(source: Path) -> list[Path]:
    return sorted(
        p
        for p in source.iterdir()
        if p.is_file()
        and p.suffix in KEPT_SUFFIXES
        and p.name not in LEFT_OUT
        and not p.name.startswith(LEFT_OUT_PREFIXES)
    )


# ---------------------------------------------------------------- writing the folder


def export_run(run_dir: Path, which: rf.Which, out: Path, merge: bool = False) -> Export:
    """Write the run's model at `which` into `out` (replaced whole: written beside it, then
    renamed), with its model card; returns what was written."""
    run_dir, out = Path(run_dir), Path(out)
    source = source_folder(run_dir, which)
    config = run_config(run_dir)
    adapter = is_adapter(source)
    if merge and not adapter:
        raise ExportError("--merge is for LoRA runs: this run trained the full weights")
    kind = "merged" if merge else "adapter" if adapter else "full"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        if merge:
            _write_merged(run_dir, source, tmp)
        else:
            for path in _kept_files(source):
                shutil.copy2(path, tmp / path.name)
        _ensure_generation_config(run_dir, source, tmp, config)
        # Described where it will be (the card names the folder it lands in), written in tmp.
        result = Export(out, run_dir.name, str(which), source, source_step(run_dir, source), kind)
        (tmp / RUN_CONFIG).write_text(config.model_dump_json(indent=2) + "\n", encoding="utf-8")
        (tmp / CARD).write_text(model_card(run_dir, config, result, out), encoding="utf-8")
        _readable(tmp)
        if out.exists():
            shutil.rmtree(out)
        tmp.replace(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    result.files = sorted(p.name for p in out.iterdir() if p.is_file())
    return result


def _readable(folder: Path) -> None:
    """A model folder others may read, as save_pretrained leaves one (mkdtemp makes it private,
    and checkpoint files can be owner-only)."""
    folder.chmod(0o755)
    for path in folder.iterdir():
        path.chmod(0o644)


def _write_merged(run_dir: Path, source: Path, out: Path) -> None:
    """The base model with the adapter in `source` merged in, saved as plain weights (float32)."""
    from entrodrop.adapters import merge_adapter
    from entrodrop.models import ModelLoadError, load

    config = run_config(run_dir)
    try:
        base = load(config.model, device="cpu", dtype="float32")
    except ModelLoadError as exc:
        raise ExportError(f"cannot load the base model {config.model!r}: {exc}") from None
    model = merge_adapter(base.model, source)
    model.save_pretrained(str(out), safe_serialization=True)
    base.tokenizer.save_pretrained(str(out))


def _ensure_generation_config(run_dir: Path, source: Path, out: Path, config: RunConfig) -> None:
    """generation_config.json: the source's, else the base model's, else one from config.json."""
    if (out / GENERATION_CONFIG).is_file():
        return
    from transformers import AutoConfig, GenerationConfig

    for folder in (source, _base_folder(config)):
        if folder is not None and (folder / GENERATION_CONFIG).is_file():
            shutil.copy2(folder / GENERATION_CONFIG, out / GENERATION_CONFIG)
            return
    where = out if (out / "config.json").is_file() else _base_folder(config)
    if where is None:
        return  # a hub base not cached here: nothing to derive it from
    model_config = AutoConfig.from_pretrained(str(where), trust_remote_code=False)
    GenerationConfig.from_model_config(model_config).save_pretrained(str(out))


def _base_folder(config: RunConfig) -> Path | None:
    """The local folder of the run's starting model, if it has one here."""
    from entrodrop.models import ModelLoadError, resolve_spec

    try:
        where, is_local = resolve_spec(config.model)
    except ModelLoadError:
        return None
    return Path(where) if is_local else None


# ---------------------------------------------------------------- the model card


def model_card(run_dir: Path, config: RunConfig, export: Export, out: Path) -> str:
    """README.md of an exported model (entrodrop.export_card), from the run's summary and rows."""
    summary = rf.read_json(run_dir / rf.SUMMARY) or {}
    rows = rf.RunFolder(run_dir, writer=False).read_metrics()
    return card_text(config, export, out, summary, metrics_at(rows, export.step))


# ---------------------------------------------------------------- where, and as a zip

EXPORTS = "exports"  # <home>/exports/<run id>-<checkpoint>[-merged]/: the server's exports
DISK_MARGIN = 64 * 1024 * 1024  # free space left over after an export, at least


def export_dir(home: Path, run_id: str, which: rf.Which, merge: bool = False) -> Path:
    """Where the server (and `entrodrop export` without --out) puts a run's export."""
    return Path(home) / EXPORTS / f"{run_id}-{which}{'-merged' if merge else ''}"


def check_disk(run_dir: Path, which: rf.Which, out: Path, merge: bool = False) -> int:
    """The bytes an export needs; ExportError when the disk under `out` has not that much free
    (plus a margin). The check happens before anything is written."""
    need = estimate_bytes(run_dir, which, merge)
    probe = out
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if need + DISK_MARGIN > free:
        raise DiskTooSmall(
            f"the export needs about {need / 1e9:.2f} GB and {probe} has {free / 1e9:.2f} GB free"
        )
    return need


class DiskTooSmall(ExportError):
    """Not enough free disk for an export."""


def zip_chunks(folder: Path, chunk: int = 1 << 20) -> Iterator[bytes]:
    """A zip of the folder's files (stored, not compressed: safetensors do not shrink), made
    while it is sent: no second copy on disk, about `chunk` bytes held at a time."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for path in sorted(p for p in folder.iterdir() if p.is_file()):
            info = zipfile.ZipInfo.from_file(path, f"{folder.name}/{path.name}")
            with path.open("rb") as src, archive.open(info, "w", force_zip64=True) as dst:
                while block := src.read(chunk):
                    dst.write(block)
                    yield sink.take()
        yield sink.take()
    yield sink.take()  # the central directory, written when the archive closes


class _Sink(io.RawIOBase):
    """A write-only stream zipfile writes into; take() hands over what was written so far."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._written = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        block = bytes(data)
        self._parts.append(block)
        self._written += len(block)
        return len(block)

    def tell(self) -> int:
        return self._written

    def take(self) -> bytes:
        out, self._parts = b"".join(self._parts), []
        return out
