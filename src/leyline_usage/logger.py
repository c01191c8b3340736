"""UsageLogger: the public entry point for logging and querying one service."""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from leyline_usage.batching import DEFAULT_MAX_DELAY, DEFAULT_MAX_ENTRIES, Batch
from leyline_usage.chain import CHAIN_KEY, anchor_for_new_file, line_hash
from leyline_usage.config import ConfigError
from leyline_usage.entry import (
    MAX_COUNT,
    Entry,
    breakdown_total,
    check_duration,
    check_token_count,
    encode_entry,
    format_timestamp,
    new_entry_id,
    token_breakdown,
)
from leyline_usage.errors import StorageError
from leyline_usage.paths import default_storage_dir, validate_service_name
from leyline_usage.plugins import HookSet, plugin_manager
from leyline_usage.pricing_plugin import price_table
from leyline_usage.query import (
    DEFAULT_FALLBACK_RATE,
    Pricer,
)
from leyline_usage.reader import iter_entries
from leyline_usage.redaction import may_hold_secrets
from leyline_usage.segments import Rotation
from leyline_usage.service_queries import ServiceQueries
from leyline_usage.session import (
    DEFAULT_TIMEOUT,
    SESSION_ID_ENV,
    SessionTracker,
    new_session_id,
    validate_session_id,
)
from leyline_usage.store import (
    DEFAULT_LOCK_TIMEOUT,
    LockTimeout,
    WriteOptions,
    appender_for,
)
from leyline_usage.tracking import Tracked

_log = logging.getLogger("leyline_usage")

DEFAULT_MAX_ENTRY_BYTES = 1 << 20
_ENRICH_ARGUMENTS = ("entry", "metadata")
# Bytes the chain adds to a line: ,"chain":"<32 hex digits>"
_CHAIN_BYTES = 43
# A dropped entry is reported at most this often per logger; the rest are counted.
_WARNING_INTERVAL = 60.0


class UsageLogger(ServiceQueries):
    """Session-aware usage logger for one service, writing ``{service}.jsonl``.

    Many processes may log to the same service at once. By default a failure
    of the environment (disk full, permissions) is logged as a warning and the
    entry is counted in :attr:`dropped_entries`; ``strict=True`` raises
    :class:`~leyline_usage.errors.StorageError` instead. Invalid arguments
    always raise ValueError.
    """

    SESSION_TIMEOUT = DEFAULT_TIMEOUT

    def __init__(
        self,
        service: str,
        storage_dir: Path | str | None = None,
        session_id: str | None = None,
        *,
        session_timeout: float | None = None,
        strict: bool = False,
        fallback_rate: Decimal | float | str | None = None,
        max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES,
        rotate_bytes: int | None = None,
        rotate_age: float | None = None,
        lock_timeout: float | None = None,
        chain: bool | None = None,
    ) -> None:
        self.service = validate_service_name(service)
        if storage_dir is None:
            self.storage_dir = default_storage_dir()
        else:
            # Absolute, so that a later chdir of the host moves neither the
            # log nor what sinks derive from this path.
            self.storage_dir = Path(storage_dir).expanduser().absolute()
        self.log_file = self.storage_dir / f"{service}.jsonl"
        self.session_file = self.storage_dir / f"{service}_session.json"
        self.strict = strict
        self.max_entry_bytes = check_token_count("max_entry_bytes", max_entry_bytes)
        self.dropped_entries = 0
        self.skipped_lines = 0
        manager = plugin_manager()
        config = manager.config
        if config.error is not None:
            if strict:
                raise ConfigError(config.error)
            _log.warning("%s; entries are logged without cost", config.error)
        if session_timeout is None:
            session_timeout = config.session_timeout
        if fallback_rate is None:
            fallback_rate = config.fallback_rate or DEFAULT_FALLBACK_RATE

        if session_id is None:
            session_id = os.environ.get(SESSION_ID_ENV) or None
        self._explicit_session = (
            None if session_id is None else validate_session_id(session_id)
        )
        self._appender = appender_for(self.log_file)
        if rotate_bytes is None:
            rotate_bytes = config.rotate_bytes
        if rotate_age is None:
            rotate_age = config.rotate_age
        rotation = None
        if rotate_bytes is not None or rotate_age is not None:
            rotation = Rotation(rotate_bytes, rotate_age)
        self.chain = config.chain if chain is None else bool(chain)
        if lock_timeout is not None and not 0 < lock_timeout < math.inf:
            raise ValueError(
                "lock_timeout must be a positive number of seconds, "
                f"got {lock_timeout!r}"
            )
        self._write_options = WriteOptions(
            DEFAULT_LOCK_TIMEOUT if lock_timeout is None else float(lock_timeout),
            rotation,
        )
        timeout = self.SESSION_TIMEOUT if session_timeout is None else session_timeout
        self._sessions = SessionTracker(
            self._appender, self.session_file, timeout, self._write_options,
            strict=strict,
        )  # fmt: skip
        self._fallback_rate: Decimal | float | str = fallback_rate
        self._pricer: Pricer | None = None
        self._last_warning = -math.inf
        self._offline_session: str | None = None
        self._plugins = manager
        self._hook_set = HookSet(manager)
        self._batch: Batch | None = None

    def __repr__(self) -> str:
        return f"UsageLogger({self.service!r}, storage_dir={str(self.storage_dir)!r})"

    @property
    def session_id(self) -> str:
        """The id of the current session, started if there is none."""
        if self._explicit_session is not None:
            return self._explicit_session
        now = time.time()
        try:
            return self._sessions.current(now)
        except (StorageError, OSError):
            if self.strict:
                raise
            return self._local_session(now)

    # -- logging ---------------------------------------------------------

    def log_usage(
        self,
        operation: str,
        tokens: int | None = None,
        success: bool = True,
        duration: float = 0.0,
        error_type: str | None = None,
        error_message: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        model: str | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cache_read_tokens: int | None = None,
        cache_write_tokens: int | None = None,
        cache_write_5m_tokens: int | None = None,
        cache_write_1h_tokens: int | None = None,
        cost_usd: float | Decimal | None = None,
        session_id: str | None = None,
        usage: object = None,
    ) -> Entry | None:
        """Append one entry and return it, or None if the environment dropped it.

        ``tokens`` is the total; when it is omitted it is the sum of the
        breakdown. ``duration`` is in seconds. ``usage`` takes an SDK usage
        object or dict (Anthropic, OpenAI, Gemini) in place of the breakdown;
        explicit counts win over it. Entries with a known ``model`` and a
        breakdown get ``cost_usd`` from the cost model plugins.
        """
        hooks = self._hook_set
        if hooks.generation != self._plugins.generation:
            hooks = self._hooks()
        if usage is not None:
            adapted = self._adapt_usage(hooks, usage)
            input_tokens = _first(input_tokens, adapted.get("input_tokens"))
            output_tokens = _first(output_tokens, adapted.get("output_tokens"))
            cache_read_tokens = _first(
                cache_read_tokens, adapted.get("cache_read_tokens")
            )
            cache_write_tokens = _first(
                cache_write_tokens, adapted.get("cache_write_tokens")
            )
            cache_write_5m_tokens = _first(
                cache_write_5m_tokens, adapted.get("cache_write_5m_tokens")
            )
            cache_write_1h_tokens = _first(
                cache_write_1h_tokens, adapted.get("cache_write_1h_tokens")
            )
            if adapted.get("reasoning_tokens"):
                metadata = {
                    "reasoning_tokens": adapted["reasoning_tokens"],
                    **(metadata or {}),
                }
        counts = token_breakdown(
            input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
            cache_write_5m_tokens, cache_write_1h_tokens,
        )  # fmt: skip

        # The checks and the entry are written out here rather than in helpers
        # because this is the caller's hot path. Each check starts with a cheap
        # test that ordinary arguments pass.
        if type(operation) is not str or not operation:
            raise ValueError(f"operation must be a non-empty string, got {operation!r}")
        if success is not True and success is not False:
            raise ValueError(f"success must be True or False, got {success!r}")
        if metadata is None:
            metadata = {}
        elif type(metadata) is not dict and not isinstance(metadata, Mapping):
            raise ValueError(
                f"metadata must be a mapping, got {type(metadata).__name__}"
            )
        if tokens is None:
            tokens = breakdown_total(counts)
        elif type(tokens) is not int or not 0 <= tokens <= MAX_COUNT:
            tokens = check_token_count("tokens", tokens)
        if type(duration) is not float or not 0.0 <= duration < math.inf:
            duration = check_duration(duration)
        if model is not None and (type(model) is not str or not model):
            raise ValueError(f"model must be a non-empty string, got {model!r}")
        if session_id is not None:
            session_id = validate_session_id(session_id)

        now = time.time()
        session = session_id or self._explicit_session or self._current_session(now)
        if session is None:
            return None
        entry: Entry = {
            "timestamp": format_timestamp(now),
            "session_id": session,
            "service": self.service,
            "operation": operation,
            "tokens": tokens,
            "success": success,
            "duration_seconds": duration,
            "error_type": None if error_type is None else str(error_type),
            "error_message": None if error_message is None else str(error_message),
            "metadata": metadata,
        }
        if model is not None:
            entry["model"] = model
        if counts:
            entry.update(counts)
        if cost_usd is not None:
            entry["cost_usd"] = _check_cost(cost_usd)
        elif model is not None and counts:
            self._attach_cost(entry, built=True)
        entry["id"] = new_entry_id()

        if hooks.enrichers and not (
            hooks.redaction_only and not may_hold_secrets(metadata)
        ):
            self._enrich(hooks, entry)
        line = encode_entry(entry, self.strict)
        if len(line) + (_CHAIN_BYTES if self.chain else 0) > self.max_entry_bytes:
            self._reject_oversized(entry, line)
        if self._batch is not None:
            self._batch.add(line, entry)
            return entry
        try:
            if self.chain:
                self._append_chained([entry])
            else:
                self._appender.append(line, self._write_options)
        except (StorageError, OSError) as exc:
            self._drop(exc, 1)
            return None
        rotation = self._write_options.rotation
        if rotation is not None and rotation.pending:
            rotation.compress_pending(self.log_file, self._locked)
        if hooks.sinks:
            self._send_to_sinks(hooks, [entry])
        return entry

    @contextmanager
    def batch(
        self,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_delay: float = DEFAULT_MAX_DELAY,
    ) -> Iterator[Batch]:
        """Buffer this logger's entries and write them many at a time.

        Entries are written under one lock acquisition when ``max_entries``
        are buffered, when the oldest is ``max_delay`` seconds old, when the
        block ends, and at interpreter exit. A nested ``batch()`` joins the
        outer one. ``log_usage`` still validates and returns each entry at
        once. A storage failure at flush time drops and counts the entries,
        or with ``strict=True`` raises at the next call.
        """
        if self._batch is not None:
            yield self._batch
            return
        batch = Batch(self._write_encoded, max_entries, max_delay)
        self._batch = batch
        try:
            yield batch
        finally:
            self._batch = None
            batch.close()

    def _write_encoded(self, data: bytes, entries: Sequence[Entry]) -> None:
        try:
            if self.chain:
                self._append_chained(entries)
            else:
                self._appender.append(data, self._write_options)
        except (StorageError, OSError) as exc:
            self._drop(exc, len(entries))
            return
        rotation = self._write_options.rotation
        if rotation is not None and rotation.pending:
            rotation.compress_pending(self.log_file, self._locked)
        hooks = self._hooks()
        if hooks.sinks:
            self._send_to_sinks(hooks, entries)

    def _locked(self) -> AbstractContextManager[None]:
        return self._appender.locked(self._write_options)

    def _append_chained(self, entries: Sequence[Entry]) -> None:
        self._appender.append_built(
            lambda last: self._chained_lines(entries, last), self._write_options
        )

    def _chained_lines(self, entries: Sequence[Entry], last: bytes | None) -> bytes:
        """Encode ``entries``, each carrying the hash of the line before it."""
        previous = (
            anchor_for_new_file(self.log_file) if last is None else line_hash(last)
        )
        lines = []
        for entry in entries:
            entry[CHAIN_KEY] = previous
            line = self._encode(entry)
            previous = line_hash(line)
            lines.append(line)
        return b"".join(lines)

    def track(
        self,
        operation: str,
        *,
        model: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Tracked:
        """Time a block or function and log it, as a context manager or decorator.

        Works with ``with``, ``async with`` and on sync or async functions.
        A block that raises is logged as failed, with the exception's type and
        message, and the exception propagates. Inside a ``with`` block, set
        ``usage``, ``model`` or ``metadata`` on the returned object. A decorated
        function's return value supplies them if it has a ``usage`` field.
        """
        return Tracked(self, operation, model, metadata)

    def _hooks(self) -> HookSet:
        hooks = self._hook_set
        if hooks.generation != self._plugins.generation:
            hooks = self._hook_set = HookSet(self._plugins)
        return hooks

    def _adapt_usage(self, hooks: HookSet, usage: object) -> dict[str, int]:
        if isinstance(usage, Mapping) and not usage:
            return {}
        adapted = hooks.adapt_usage(usage=usage)
        if adapted is None:
            raise ValueError(
                f"usage object of type {type(usage).__name__} is not recognized: pass "
                "the token counts as input_tokens=, output_tokens=, ... instead"
            )
        return dict(adapted)

    def _enrich(self, hooks: HookSet, entry: Entry) -> None:
        metadata = dict(entry["metadata"])
        for name, enrich, names in hooks.enrichers:
            try:
                if names == _ENRICH_ARGUMENTS:
                    enrich(entry, metadata)
                else:
                    arguments = {"entry": entry, "metadata": metadata}
                    enrich(*[arguments[n] for n in names])
            except Exception as exc:
                self._plugins.record_failure(name, "enrich", exc, self.storage_dir)
        entry["metadata"] = metadata

    def _send_to_sinks(self, hooks: HookSet, entries: Sequence[Entry]) -> None:
        arguments = {"entries": entries, "storage_dir": self.storage_dir}
        for name, sink, names in hooks.sinks:
            try:
                sink(*[arguments[n] for n in names])
            except Exception as exc:
                self._plugins.record_failure(name, "sink", exc, self.storage_dir)

    def write_entries(
        self, entries: Sequence[Entry], *, skip_existing: bool = False
    ) -> int:
        """Append complete entries under one lock acquisition and return how many.

        The entries must already carry every key of the log format; importers
        use this to keep their own timestamps, sessions and ids. With
        ``skip_existing``, entries whose ``id`` is already in the log are left
        out, so importing the same source twice adds nothing.
        """
        try:
            with self._appender.locked(self._write_options):
                if skip_existing:
                    present = {e.get("id") for e in iter_entries(self.files())}
                    entries = [e for e in entries if e.get("id") not in present]
                if entries and self.chain:
                    last = self._appender.last_entry_line_locked()
                    self._appender.append_locked(self._chained_lines(entries, last))
                elif entries:
                    data = b"".join(self._encode(entry) for entry in entries)
                    self._appender.append_locked(data)
        except (StorageError, OSError) as exc:
            self._drop(exc, len(entries))
            return 0
        hooks = self._hooks()
        if entries and hooks.sinks:
            self._send_to_sinks(hooks, entries)
        return len(entries)

    def attach_cost(self, entry: Entry) -> Entry:
        """Set ``cost_usd`` on ``entry`` if a cost model plugin can price it."""
        return self._attach_cost(entry, built=False)

    def _attach_cost(self, entry: Entry, built: bool) -> Entry:
        """Price ``entry``. ``built`` is True for an entry log_usage made."""
        try:
            if built and self._hook_set.tables_only:
                # What the built-in cost model does, without its checks of
                # an entry that log_usage has just built.
                cost = price_table().fast_cost(
                    entry["model"], entry["timestamp"][:10], entry
                )
            else:
                cost = self._hook_set.cost(entry=entry)
        except Exception as exc:
            # A broken cost model or pricing table must not cost the host tool
            # its entry: the entry is logged unpriced and summaries fall back.
            if self.strict:
                raise
            self._warn("cost model failed for model %r: %s", entry.get("model"), exc)
            return entry
        if cost is not None:
            entry["cost_usd"] = float(cost)
        return entry

    def _encode(self, entry: Entry) -> bytes:
        line = encode_entry(entry, self.strict)
        if len(line) > self.max_entry_bytes:
            self._reject_oversized(entry, line)
        return line

    def _reject_oversized(self, entry: Entry, line: bytes) -> None:
        size = len(line) + (_CHAIN_BYTES if self.chain else 0)
        chained = " with its chain hash" if self.chain else ""
        raise ValueError(
            f"entry for operation {entry['operation']!r} is {size} bytes{chained}, "
            f"over the limit of {self.max_entry_bytes}: shorten its metadata "
            "or raise max_entry_bytes"
        )

    def _current_session(self, now: float) -> str | None:
        """Return the session for an entry, or None if the entry must be dropped."""
        try:
            return self._sessions.current(now)
        except LockTimeout as exc:
            # The lock may be free by the time of the append, which would then
            # write the entry under a session no other process has seen.
            self._drop(exc, 1)
            return None
        except (StorageError, OSError) as exc:
            if self.strict:
                self.dropped_entries += 1
                raise
            # The append that follows fails the same way and is counted there;
            # the id only has to be stable for this process meanwhile.
            _log.debug("session state unavailable (%s); using a local session", exc)
            return self._local_session(now)

    def _local_session(self, now: float) -> str:
        if self._offline_session is None:
            self._offline_session = new_session_id(now)
        return self._offline_session

    def _drop(self, exc: OSError, count: int) -> None:
        self.dropped_entries += count
        if self.strict:
            if isinstance(exc, StorageError):
                raise exc
            raise StorageError(self.log_file, str(exc)) from exc
        self._warn(
            "dropped %d usage entries for service %r (%d dropped so far): %s",
            count,
            self.service,
            self.dropped_entries,
            exc,
        )

    def _warn(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last_warning >= _WARNING_INTERVAL:
            self._last_warning = now
            _log.warning(message, *args)

    def _active_session(self) -> str | None:
        if self._explicit_session is not None:
            return self._explicit_session
        return self._sessions.peek()


def _check_cost(cost: object) -> float:
    if isinstance(cost, bool) or not isinstance(cost, (int, float, Decimal)):
        raise ValueError(f"cost_usd must be a number, got {cost!r}")
    try:
        value = float(cost)
    except OverflowError:
        value = math.inf
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"cost_usd must be finite and non-negative, got {cost!r}")
    return value


def _first(explicit: int | None, adapted: int | None) -> int | None:
    return adapted if explicit is None else explicit
