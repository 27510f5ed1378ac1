"""Whether the model hub answers: a quick probe, so an offline machine fails at once, never hangs.

The dashboard (app/hub.py) and `entrodrop eval` ask here before anything would download.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading

HUB_HOST = "huggingface.co"
HUB_PORT = 443
PROBE_TIMEOUT_S = 1.5  # a DNS look-up plus a TCP connect; never the ~24 s of a library's retries
OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def offline_by_setting() -> bool:
    """HF_HUB_OFFLINE=1 (huggingface_hub's own switch) says so without a look at the network."""
    return _truthy(os.environ.get("HF_HUB_OFFLINE"))


def connect(host: str = HUB_HOST, port: int = HUB_PORT, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to host:port opens within about `timeout` seconds."""
    # getaddrinfo has no timeout of its own: run it in a thread and stop waiting after `timeout`.
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    worker = threading.Thread(target=probe, name="hub-probe", daemon=True)
    worker.start()
    worker.join(timeout * 2)
    return bool(result and result[0])


def hub_reachable() -> bool:
    """The hub answers now (False at once when an offline switch is set)."""
    return not offline_by_setting() and connect()


def go_offline() -> None:
    """Set every Hugging Face library's offline switch for this process (and its children): a
    download then fails within seconds with the library's own 'offline mode' error. Set before
    `datasets` or `huggingface_hub` are imported: they read the switches once."""
    for name in OFFLINE_VARS:
        os.environ[name] = "1"


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (a server bound there is private)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
