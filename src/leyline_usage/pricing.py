"""Model prices from TOML tables, with price history and long-context tiers.

Prices are USD per million tokens and are parsed as :class:`~decimal.Decimal`.
A table file looks like ``pricing/anthropic.toml``; ``pricing/README.md``
describes the schema.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from leyline_usage.errors import PricingError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MILLION = Decimal(1_000_000)
RATE_KEYS = ("input", "output", "cache_read", "cache_write_5m", "cache_write_1h")
# Provider prefixes and date suffixes that name the same model as the bare id:
# "anthropic/claude-x", "us.anthropic.claude-x-v1:0", "claude-x@20250929".
_PREFIX = re.compile(r"^(?:[a-z]{2}\.)?(?:anthropic|openai|google|models)[./]")
_SUFFIX = re.compile(r"(?:[-@]\d{8}|-latest|-v\d+(?::\d+)?)$")


@dataclass(frozen=True)
class Rates:
    """Prices of one period or tier, USD per million tokens."""

    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write_5m: Decimal
    cache_write_1h: Decimal


@dataclass(frozen=True)
class Tier:
    """Rates that apply to a whole request whose input exceeds a threshold."""

    above_input_tokens: int
    rates: Rates


@dataclass(frozen=True)
class Period:
    """Prices in force from ``effective_from`` until the next period begins."""

    effective_from: date
    source: str
    checked: date
    rates: Rates
    tiers: tuple[Tier, ...]

    def rates_for(self, input_total: int) -> tuple[Rates, Tier | None]:
        """Return the rates and tier for a request with ``input_total`` input tokens."""
        for tier in reversed(self.tiers):
            if input_total > tier.above_input_tokens:
                return tier.rates, tier
        return self.rates, None


@dataclass(frozen=True)
class ModelPrices:
    """The price history of one model, as read from one table."""

    model: str
    provider: str
    table: str
    aliases: tuple[str, ...]
    periods: tuple[Period, ...]

    def period_at(self, when: date) -> Period:
        """Return the period in force on ``when`` (the first one for earlier dates)."""
        chosen = self.periods[0]
        for period in self.periods:
            if period.effective_from <= when:
                chosen = period
        return chosen


@dataclass(frozen=True)
class Quote:
    """The cost of one usage and the table, period and tier that priced it."""

    model: ModelPrices
    period: Period
    tier: Tier | None
    cost: Decimal


# Per-million float rates in RATE_KEYS order, and tiers as (threshold, rates).
_FloatRates = tuple[float, float, float, float, float]
_Plan = tuple[_FloatRates, tuple[tuple[int, _FloatRates], ...]]
_MAX_PLANS = 4096


def _float_rates(rates: Rates) -> _FloatRates:
    return (
        float(rates.input),
        float(rates.output),
        float(rates.cache_read),
        float(rates.cache_write_5m),
        float(rates.cache_write_1h),
    )


class PriceTable:
    """All known model prices, looked up by model id or alias."""

    def __init__(self, models: Iterable[ModelPrices] = ()) -> None:
        self._models: dict[str, ModelPrices] = {}
        self._names: dict[str, ModelPrices] = {}
        # (model, "YYYY-MM-DD") -> float rates in force, or None if unknown.
        self._plans: dict[tuple[str, str], _Plan | None] = {}
        for model in models:
            self.add(model)

    @classmethod
    def load(cls, paths: Iterable[Path]) -> PriceTable:
        """Read the tables at ``paths``; for a model in several, the last one wins."""
        table = cls()
        for path in paths:
            for model in read_table(path):
                table.add(model)
        return table

    def add(self, model: ModelPrices) -> None:
        """Add or replace the prices of ``model``."""
        self._plans.clear()
        self._models[model.model] = model
        for name in (model.model, *model.aliases):
            self._names[name.lower()] = model

    def models(self) -> list[ModelPrices]:
        """Return every model, sorted by provider and id."""
        return sorted(self._models.values(), key=lambda m: (m.provider, m.model))

    def lookup(self, model: str) -> ModelPrices | None:
        """Find ``model`` by id or alias, then without provider prefix or suffix."""
        name = model.lower()
        found = self._names.get(name)
        if found is None:
            name = _PREFIX.sub("", name)
            found = self._names.get(name)
        while found is None and _SUFFIX.search(name):
            name = _SUFFIX.sub("", name)
            found = self._names.get(name)
        return found

    def quote(self, model: str, when: date, counts: Mapping[str, int]) -> Quote | None:
        """Price a token breakdown (keyed as in an entry) of ``model`` on ``when``."""
        prices = self.lookup(model)
        if prices is None:
            return None
        period = prices.period_at(when)
        rates, tier = period.rates_for(_input_total(counts))
        return Quote(prices, period, tier, _cost(rates, counts))

    def fast_cost(
        self, model: str, day: str, counts: Mapping[str, int]
    ) -> float | None:
        """Return the cost in USD as a float, like :meth:`quote`, cached per day.

        ``day`` is an ISO date (``YYYY-MM-DD``). This is the logging hot path:
        after the first entry of a model on a day it does no lookup and no
        Decimal arithmetic.
        """
        key = (model, day)
        try:
            plan = self._plans[key]
        except KeyError:
            plan = self._plan(model, day)
            if len(self._plans) >= _MAX_PLANS:
                self._plans.clear()
            self._plans[key] = plan
        if plan is None:
            return None
        rates, tiers = plan
        get = counts.get
        uncached = get("input_tokens", 0)
        cache_read = get("cache_read_tokens", 0)
        cache_write = get("cache_write_tokens", 0)
        if tiers:
            input_total = uncached + cache_read + cache_write
            for threshold, tier_rates in reversed(tiers):
                if input_total > threshold:
                    rates = tier_rates
                    break
        write_5m = get("cache_write_5m_tokens", 0)
        write_1h = get("cache_write_1h_tokens", 0)
        write_unsplit = max(cache_write - write_5m - write_1h, 0)
        total = (
            uncached * rates[0]
            + get("output_tokens", 0) * rates[1]
            + cache_read * rates[2]
            + (write_5m + write_unsplit) * rates[3]
            + write_1h * rates[4]
        )
        return total / 1_000_000

    def _plan(self, model: str, day: str) -> _Plan | None:
        prices = self.lookup(model)
        if prices is None:
            return None
        try:
            when = date.fromisoformat(day)
        except ValueError:
            when = date.today()
        period = prices.period_at(when)
        tiers = tuple(
            (t.above_input_tokens, _float_rates(t.rates)) for t in period.tiers
        )
        return _float_rates(period.rates), tiers


def _input_total(counts: Mapping[str, int]) -> int:
    # Long-context thresholds count every input token, cached or not.
    return (
        counts.get("input_tokens", 0)
        + counts.get("cache_read_tokens", 0)
        + counts.get("cache_write_tokens", 0)
    )


def _cost(rates: Rates, counts: Mapping[str, int]) -> Decimal:
    write_5m = counts.get("cache_write_5m_tokens", 0)
    write_1h = counts.get("cache_write_1h_tokens", 0)
    # Writes without a known split are priced as 5-minute writes, the
    # default cache lifetime of providers that charge for writes.
    write_unsplit = counts.get("cache_write_tokens", 0) - write_5m - write_1h
    total = (
        counts.get("input_tokens", 0) * rates.input
        + counts.get("output_tokens", 0) * rates.output
        + counts.get("cache_read_tokens", 0) * rates.cache_read
        + (write_5m + max(write_unsplit, 0)) * rates.cache_write_5m
        + write_1h * rates.cache_write_1h
    )
    return total / MILLION


def bundled_table_paths() -> list[Path]:
    """Return the TOML tables shipped with the package, sorted by name."""
    packaged = resources.files("leyline_usage") / "pricing"
    if packaged.is_dir():
        directory = Path(str(packaged))
    else:
        # A source checkout or editable install: the tables sit at the top of
        # the repository and are copied into the package only when a wheel is built.
        directory = Path(__file__).resolve().parents[2] / "pricing"
    return sorted(directory.glob("*.toml"))


def read_table(path: Path) -> list[ModelPrices]:
    """Parse one pricing table, raising PricingError with the file, line and key."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PricingError(
            str(path), "-", f"cannot read: {exc.strerror or exc}"
        ) from exc
    try:
        document = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise PricingError(str(path), "-", f"invalid TOML: {exc}") from exc
    provider = document.get("provider", path.stem)
    return parse_models(str(path), text, str(provider), document.get("models"))


def parse_models(
    source: str, text: str, provider: str, models: Any
) -> list[ModelPrices]:
    """Parse a ``models`` table read from ``text``, which locates error lines."""
    if not isinstance(models, dict) or not models:
        raise PricingError(source, "models", 'missing: add [models."MODEL-ID"] tables')
    return [
        _parse_model(source, text, provider, name, body)
        for name, body in models.items()
    ]


def _parse_model(
    source: str, text: str, provider: str, name: str, body: Any
) -> ModelPrices:
    where = f"{source}, line {_line_of(text, name)}"
    key = f"models.{name}"
    if not isinstance(body, dict):
        raise PricingError(where, key, "must be a table")
    aliases = body.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise PricingError(where, f"{key}.aliases", "must be a list of strings")
    raw_periods = body.get("periods")
    if not isinstance(raw_periods, list) or not raw_periods:
        raise PricingError(
            where, f"{key}.periods", "missing: add at least one [[...periods]]"
        )
    periods = [
        _parse_period(where, f"{key}.periods[{i}]", raw)
        for i, raw in enumerate(raw_periods)
    ]
    periods.sort(key=lambda p: p.effective_from)
    return ModelPrices(name, provider, source, tuple(aliases), tuple(periods))


def _parse_period(where: str, key: str, raw: Any) -> Period:
    if not isinstance(raw, dict):
        raise PricingError(where, key, "must be a table")
    effective_from = _date(where, key, raw, "effective_from")
    checked = _date(where, key, raw, "checked")
    source = raw.get("source")
    if not isinstance(source, str) or not source:
        raise PricingError(
            where, f"{key}.source", "missing: name the provider's pricing page"
        )
    tiers = []
    for i, tier in enumerate(raw.get("tiers", [])):
        tier_key = f"{key}.tiers[{i}]"
        threshold = tier.get("above_input_tokens") if isinstance(tier, dict) else None
        if type(threshold) is not int or threshold < 0:
            raise PricingError(
                where,
                f"{tier_key}.above_input_tokens",
                "must be a non-negative integer",
            )
        tiers.append(Tier(threshold, _rates(where, tier_key, tier)))
    tiers.sort(key=lambda t: t.above_input_tokens)
    return Period(
        effective_from, source, checked, _rates(where, key, raw), tuple(tiers)
    )


def _rates(where: str, key: str, raw: dict[str, Any]) -> Rates:
    values: dict[str, Decimal] = {}
    for name in RATE_KEYS:
        value = raw.get(name)
        if value is None:
            if name in ("input", "output"):
                raise PricingError(
                    where, f"{key}.{name}", "missing: add the price per million tokens"
                )
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, Decimal))
            or value < 0
        ):
            raise PricingError(
                where, f"{key}.{name}", f"must be a non-negative number, got {value!r}"
            )
        values[name] = Decimal(value)
    # An unpriced cache key costs what plain input costs.
    for name in ("cache_read", "cache_write_5m", "cache_write_1h"):
        values.setdefault(name, values["input"])
    return Rates(**values)


def _date(where: str, key: str, raw: dict[str, Any], name: str) -> date:
    value = raw.get(name)
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    raise PricingError(
        where, f"{key}.{name}", f"must be a date like 2025-01-31, got {value!r}"
    )


def _line_of(text: str, model: str) -> int:
    name = re.escape(model)
    header = rf"^[ \t]*\[+[ \t]*(?:pricing\.)?models\.(\"{name}\"|{name})\b"
    pattern = re.compile(header, re.M)
    match = pattern.search(text)
    return text.count("\n", 0, match.start()) + 1 if match else 1
