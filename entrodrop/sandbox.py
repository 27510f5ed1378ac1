"""Parse untrusted data files in a short-lived child process with a memory and a time limit.

A file can lie about its size: a parquet footer that declares 1 KB over one zstd value of 1 GB
passes every check made from the footer, and decompressing it costs the gigabyte. The one bound
that holds is the memory the parsing actually gets. So a server parses what users send (uploads,
the datasets a preview reads) in a child process whose address space is capped
(``RLIMIT_AS``) and which is killed after a timeout; it gets back only what it needs (counts,
or texts within the decoded-text budget). A bomb costs the child: the caller gets
:class:`~entrodrop.data.DataTooLarge` (out of memory) or :class:`~entrodrop.data.DataError`
(out of time), with a message for a person.

Children are forked from multiprocessing's forkserver, a clean helper process (no server
threads) that imports the parsing code once: a parse costs a fork, not an interpreter start.
Where the OS has no ``RLIMIT_AS`` (Windows) or ignores it (macOS), only the time limit holds.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, NamedTuple, TypeVar

from entrodrop.config import DataFormatChoice
from entrodrop.data import DataError, DataTooLarge, describe_upload, parse_data_file

T = TypeVar("T")

MIN_MEMORY_BYTES = 256 << 20  # what a child may allocate beyond its start, at least
MEMORY_PER_TEXT_BYTE = 16  # ... or this many times the decoded-text budget: strings, a result
TIMEOUT_S = 60.0
MAX_CHILDREN = 2  # parses at once; more wait their turn (each may take its whole memory)
_children = threading.BoundedSemaphore(MAX_CHILDREN)


class Limits(NamedTuple):
    """What one parse may take: memory beyond the child's start, and wall time."""

    memory_bytes: int
    timeout_s: float = TIMEOUT_S


def limits_for(text_budget: int | None) -> Limits:
    """The limits that fit a decoded-text budget (None: no budget, the minimum memory)."""
    return Limits(max(MIN_MEMORY_BYTES, MEMORY_PER_TEXT_BYTE * (text_budget or 0)))


# Imported once by the forkserver, before any limit: a child only forks them (an import under
# the limit could fail for want of address space, not for the file's sake).
PRELOAD = ("pyarrow.parquet", "pyarrow.compute")
# Arrow's own allocators (mimalloc, jemalloc) reserve address space by the gigabyte, which an
# address-space limit turns into failures unrelated to the file; malloc takes what it uses.
CHILD_ENV = {"ARROW_DEFAULT_MEMORY_POOL": "system"}
_starting = threading.Lock()


@functools.cache
def _context() -> Any:
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" not in methods:
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__, *PRELOAD])
    from multiprocessing import forkserver

    with _starting:  # the forkserver takes this environment; the server keeps its own
        saved = {k: os.environ.get(k) for k in CHILD_ENV}
        os.environ.update(CHILD_ENV)
        try:
            forkserver.ensure_running()
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    return ctx


def _cap_memory(memory_bytes: int) -> None:
    try:
        import resource

        import psutil
    except ImportError:  # no RLIMIT_AS here: the time limit still holds
        return
    start = psutil.Process().memory_info().vms  # what the child has mapped already
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = start + memory_bytes
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _out_of_memory(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:  # DataError wraps pyarrow's ArrowMemoryError (a MemoryError)
        if isinstance(seen, MemoryError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _child(conn: Connection, memory_bytes: int, fn: Callable[..., Any], args: tuple) -> None:
    """The child's side: cap the memory, run, send back ("ok", result) or what went wrong."""
    try:
        _cap_memory(memory_bytes)
        conn.send(("ok", fn(*args)))
    except BaseException as exc:  # everything goes back to the parent, which decides
        try:
            conn.send(("memory", None) if _out_of_memory(exc) else ("error", exc))
        except Exception:  # an exception that does not pickle: its words do
            conn.send(("error", DataError(f"{type(exc).__name__}: {exc}")))
    finally:
        conn.close()


def run_isolated(fn: Callable[..., T], *args: Any, name: str, limits: Limits) -> T:
    """fn(*args) in a memory- and time-limited child process; `name` (the file) is what the
    error messages speak of. `fn` and its arguments and result must pickle."""
    ctx = _context()
    with _children:
        receiver, sender = ctx.Pipe(duplex=False)
        process = ctx.Process(
            target=_child, args=(sender, limits.memory_bytes, fn, args), daemon=True
        )
        process.start()
        sender.close()
        try:
            if not receiver.poll(limits.timeout_s):
                raise DataError(
                    f"{name}: reading it took longer than {limits.timeout_s:.0f} s, the limit "
                    "here; is it a compressed bomb?"
                )
            kind, value = receiver.recv()
        except EOFError:  # the child died without a word: the OS's OOM killer, a crash
            kind, value = "memory", None
        finally:
            receiver.close()
            process.kill()
            process.join()
    if kind == "ok":
        return value  # type: ignore[no-any-return]
    if kind == "memory":
        raise DataTooLarge(
            f"{name} needs more than {limits.memory_bytes / 1e6:.0f} MB of memory to read (the "
            "limit for a dataset here): it decompresses to far more than its size says"
        )
    raise value


class Summary(NamedTuple):
    """What a server keeps of a parsed upload: its format, examples and characters."""

    format: str
    n_examples: int
    n_chars: int


def summarize(
    raw: bytes, name: str, max_text_bytes: int | None, data_format: DataFormatChoice = "auto"
) -> Summary:
    """Parse a file's bytes (the child's side of :func:`check_upload`)."""
    described = describe_upload(parse_data_file(raw, name, max_text_bytes, data_format))
    return Summary(described["format"], described["n_examples"], described["n_chars"])


def check_upload(
    raw: bytes, name: str, max_text_bytes: int | None, data_format: DataFormatChoice = "auto"
) -> Summary:
    """An uploaded file parsed in a limited child: its summary, or DataError / DataTooLarge."""
    limits = limits_for(max_text_bytes)
    return run_isolated(summarize, raw, name, max_text_bytes, data_format, name=name, limits=limits)
