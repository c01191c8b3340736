"""``UsageLogger.track``: time a block or a function call and log it."""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from leyline_usage.logger import UsageLogger

_log = logging.getLogger("leyline_usage")

F = TypeVar("F", bound=Callable[..., Any])


class Tracked:
    """One tracked operation; what the block sets here goes into its entry.

    ``usage`` takes an SDK usage object or dict, ``tokens`` a plain total,
    ``model`` the model id and ``metadata`` extra keys. ``entry`` holds the
    logged entry once the block has ended.
    """

    def __init__(
        self,
        logger: UsageLogger,
        operation: str,
        model: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        if type(operation) is not str or not operation:
            raise ValueError(f"operation must be a non-empty string, got {operation!r}")
        self.logger = logger
        self.operation = operation
        self.model = model
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.usage: object = None
        self.tokens: int | None = None
        self.entry: dict[str, Any] | None = None
        self._started = 0.0

    def __enter__(self) -> Tracked:
        self._started = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._finish(exc)

    async def __aenter__(self) -> Tracked:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._finish(exc)

    def __call__(self, function: F) -> F:
        """Decorate ``function`` (sync or async) so that every call is tracked."""
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                async with self._fresh() as tracked:
                    result = await function(*args, **kwargs)
                    tracked._adopt(result)
                    return result

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self._fresh() as tracked:
                result = function(*args, **kwargs)
                tracked._adopt(result)
                return result

        return wrapper  # type: ignore[return-value]

    def _fresh(self) -> Tracked:
        # A decorated function may run concurrently, so each call gets its own state.
        return Tracked(self.logger, self.operation, self.model, self.metadata)

    def _adopt(self, result: object) -> None:
        """Take usage and model from a return value such as an SDK response."""
        usage = _field(result, "usage")
        if usage is not None and self.usage is None:
            self.usage = usage
        model = _field(result, "model")
        if isinstance(model, str) and model and self.model is None:
            self.model = model

    def _finish(self, exc: BaseException | None) -> None:
        duration = time.perf_counter() - self._started
        arguments: dict[str, Any] = {
            "tokens": self.tokens,
            "duration": duration,
            "metadata": self.metadata,
            "model": self.model,
            "usage": self.usage,
        }
        if exc is None:
            self.entry = self.logger.log_usage(self.operation, **arguments)
            return
        try:
            self.entry = self.logger.log_usage(
                self.operation,
                success=False,
                error_type=type(exc).__name__,
                error_message=str(exc),
                **arguments,
            )
        except Exception as error:
            # The block's own exception is what the caller must see.
            _log.warning("could not log failed operation %r: %s", self.operation, error)


def _field(source: object, name: str) -> Any:
    if isinstance(source, Mapping):
        return source.get(name)
    return getattr(source, name, None)
