"""Dashboard settings, read once from ENTRODROP_* environment variables and injected into the app."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from entrodrop.data import TEXT_BUDGET_PER_UPLOAD_BYTE
from entrodrop.paths import home_dir
from entrodrop.scoring import DEFAULT_CHUNK_TOKENS


class Settings(BaseSettings):
    """Everything the server can be told; each field is ENTRODROP_<NAME> in the environment."""

    model_config = SettingsConfigDict(env_prefix="ENTRODROP_", extra="ignore")

    home: Path = Field(default_factory=home_dir, description="State folder: entrodrop.db, runs/.")
    model: str = Field("default", description="Model spec loaded at start-up.")
    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = Field(None, description="Access token; required when host is not loopback.")
    session_lifetime_s: float = Field(
        12 * 3600.0,
        gt=0,
        description="How long a browser's login (session cookie) lasts on a shared server.",
    )
    load_model_on_startup: bool = True
    max_score_tokens: int = Field(20_000, ge=1, description="Cap on tokens per scored text.")
    max_upload_bytes: int = Field(5_000_000, ge=1, description="Cap on an uploaded file's size.")
    score_queue_size: int = Field(
        8, ge=1, description="Score requests waiting at most; more get 503."
    )
    score_chunk_tokens: int = Field(
        DEFAULT_CHUNK_TOKENS,
        ge=1,
        description="Tokens per forward call when scoring: progress and cancel happen between "
        "chunks (bench/bench_chunking.py).",
    )
    max_new_tokens: int = Field(
        512, ge=1, description="Cap on the tokens one generation request may ask for."
    )
    max_concurrent_runs: int = Field(1, ge=1, description="Training runs at once; others queue.")
    allowed_data_dirs: list[Path] = Field(
        default_factory=list, description="Folders whose files may be named as datasets by path."
    )
    allowed_model_dirs: list[Path] = Field(
        default_factory=list,
        description="Folders whose checkpoints may be loaded by path. Empty: any folder on a "
        "private (token-less, loopback) server, none on a shared one (ENTRODROP_TOKEN set).",
    )
    max_study_runs: int = Field(
        60, ge=1, description="Runs one study may queue at most (variants x seeds)."
    )
    cancel_grace_s: float = Field(20.0, gt=0, description="Seconds between SIGTERM and SIGKILL.")
    max_text_bytes: int | None = Field(
        None,
        ge=1,
        description="Cap on a dataset's decoded text (UTF-8 bytes), for uploads and the training "
        f"process alike. Empty: {TEXT_BUDGET_PER_UPLOAD_BYTE} x max_upload_bytes.",
    )
    allow_hub: bool = Field(
        False,
        description="Allow hub ids (org/name) as model specs on a shared server (token or "
        "non-loopback bind); a private server always allows them.",
    )
    max_processes: int | None = Field(
        None,
        ge=1,
        description="Cap on a run's launcher processes. Empty: the CUDA device count, else the "
        "CPU cores.",
    )
    max_batch_tokens: int | None = Field(
        None,
        ge=1,
        description="Cap on batch_size x seq_len. Empty: estimated from the model's config and "
        "the memory available.",
    )
    max_seq_len: int | None = Field(
        None, ge=1, description="Cap on seq_len. Empty: the model's context length."
    )
    max_queued_runs: int = Field(
        100,
        ge=1,
        description="Runs waiting at most, single runs and studies' runs together; a request "
        "that would pass it gets 429 (the reproduction study, 16 variants x 3 seeds, queues 48).",
    )
    max_uploads: int = Field(200, ge=1, description="Files kept in <home>/uploads at most.")
    max_upload_total_bytes: int = Field(
        1_000_000_000, ge=1, description="Bytes kept in <home>/uploads at most."
    )
    max_event_streams: int = Field(
        256, ge=1, description="Live-update (SSE) streams open at once; more get 503."
    )
    event_stream_lifetime_s: float = Field(
        15.0,
        gt=0,
        description="Seconds a live-update stream stays open before the page reconnects (a "
        "stopping server waits for open streams).",
    )
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Host names this server answers to besides localhost, 127.0.0.1, [::1] and "
        "the bound address (comma-separated; '*' turns the check off, e.g. behind a proxy).",
    )

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        # ENTRODROP_ALLOWED_HOSTS=a.example,b.example: a plain comma list, not JSON.
        if isinstance(value, str):
            return [h.strip() for h in value.split(",") if h.strip()]
        return value

    @property
    def text_budget(self) -> int:
        """The decoded-text cap in force (ENTRODROP_MAX_TEXT_BYTES or its default)."""
        return self.max_text_bytes or TEXT_BUDGET_PER_UPLOAD_BYTE * self.max_upload_bytes

    @property
    def db_path(self) -> Path:
        return self.home / "entrodrop.db"

    @property
    def runs_path(self) -> Path:
        return self.home / "runs"
