"""Model-hub ids in requests: refused on shared servers unless allowed, cached copies first, and a
quick, cached reachability check so that an offline machine refuses at once instead of hanging."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

from app.settings import Settings
from entrodrop.models import ModelLoadError, check_local_checkpoint
from entrodrop.network import hub_reachable as _hub_answers
from entrodrop.network import is_loopback

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
PROBE_TTL_S = 60.0  # one probe a minute, whatever the number of requests
NO_NETWORK = "no network: the hub id {spec!r} cannot be downloaded here (and it is not cached)"
HUB_REFUSED = (
    "hub ids are disabled on this shared server (set ENTRODROP_ALLOW_HUB=1 to allow downloads); "
    "use 'default' or a run"
)


def is_hub_id(spec: str) -> bool:
    """True for an `org/name` spec that is not a path."""
    return bool(HUB_ID.match(spec)) and not spec.startswith((".", "/", "~"))


def is_shared(settings: Settings) -> bool:
    """A shared server: it has an access token or listens beyond loopback."""
    return bool(settings.token) or not is_loopback(settings.host)


def _probe() -> bool:
    return _hub_answers()


class Reachability:
    """Whether the hub answers, probed at most once per `ttl` seconds (tests swap `probe`)."""

    def __init__(self, probe: Callable[[], bool] = _probe, ttl: float = PROBE_TTL_S) -> None:
        self.probe = probe
        self.ttl = ttl
        self._lock = threading.Lock()
        self._checked_at = float("-inf")
        self._reachable = False

    def __call__(self) -> bool:
        with self._lock:  # one probe at a time; the others wait for its answer
            if time.monotonic() - self._checked_at >= self.ttl:
                self._reachable = self.probe()
                self._checked_at = time.monotonic()
            return self._reachable


hub_reachable = Reachability()


def cached_snapshot(spec: str) -> Path | None:
    """The local folder of a hub id's complete cached copy (config and safetensors), else None."""
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(spec, local_files_only=True))
        check_local_checkpoint(folder)
    except Exception:  # not cached, partly cached or not a checkpoint: not usable offline
        return None
    return folder


def check_hub_spec(spec: str, settings: Settings) -> Path | None:
    """Allow a hub id or raise ModelLoadError; returns its cached folder when there is one.

    A shared server refuses hub ids unless ENTRODROP_ALLOW_HUB is set (a download fills the disk
    and holds the scoring worker). A hub id neither cached nor reachable fails at once.
    """
    if is_shared(settings) and not settings.allow_hub:
        raise ModelLoadError(HUB_REFUSED)
    cached = cached_snapshot(spec)
    if cached is None and not hub_reachable():
        raise ModelLoadError(NO_NETWORK.format(spec=spec))
    return cached
