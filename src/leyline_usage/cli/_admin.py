"""Commands about the installation: plugins, config and prices."""

from __future__ import annotations

import argparse
import os
from datetime import date
from pathlib import Path
from typing import Any

from leyline_usage.cli._output import emit
from leyline_usage.config import (
    ConfigError,
    config_path,
    default_config_text,
    parse_config,
)
from leyline_usage.paths import default_storage_dir
from leyline_usage.plugins import failure_counts, plugin_manager
from leyline_usage.pricing import ModelPrices, Period, PriceTable
from leyline_usage.pricing_plugin import price_table


def add_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """Register the plugins, config and prices subcommands."""
    plugins = commands.add_parser(
        "plugins", help="installed plugins, their hooks and failures"
    )
    plugins.add_argument(
        "--dir", type=Path, help="storage directory whose failures to count"
    )
    plugins.add_argument("--json", action="store_true", help="print JSON")
    plugins.set_defaults(run=run_plugins)

    config = commands.add_parser("config", help="the configuration file")
    config_commands = config.add_subparsers(dest="config_command", metavar="ACTION")
    config_commands.required = True
    init = config_commands.add_parser("init", help="write a commented default config")
    init.add_argument(
        "--path", type=Path, help="where to write (default: the config path)"
    )
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    init.set_defaults(run=run_config_init)
    show = config_commands.add_parser("check", help="validate the config file")
    show.set_defaults(run=run_config_check)

    prices = commands.add_parser("prices", help="what the pricing tables say")
    price_commands = prices.add_subparsers(dest="prices_command", metavar="ACTION")
    price_commands.required = True
    listing = price_commands.add_parser("list", help="every priced model")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(run=run_prices_list)
    one = price_commands.add_parser("show", help="one model's price history")
    one.add_argument("model", help="model id or alias")
    one.add_argument("--json", action="store_true", help="print JSON")
    one.set_defaults(run=run_prices_show)
    cost = price_commands.add_parser("cost", help="what a usage costs")
    cost.add_argument("model", help="model id or alias")
    for flag, key, what in (
        ("--input", "input_tokens", "uncached input tokens"),
        ("--output", "output_tokens", "output tokens"),
        ("--cache-read", "cache_read_tokens", "cached input tokens read"),
        (
            "--cache-write-5m",
            "cache_write_5m_tokens",
            "tokens written to a 5-minute cache",
        ),
        (
            "--cache-write-1h",
            "cache_write_1h_tokens",
            "tokens written to a 1-hour cache",
        ),
    ):
        cost.add_argument(
            flag, dest=key, type=int, default=0, help=f"{what} (default: 0)"
        )
    cost.add_argument(
        "--at", type=date.fromisoformat, help="price date, YYYY-MM-DD (default: today)"
    )
    cost.add_argument("--json", action="store_true", help="print JSON")
    cost.set_defaults(run=run_prices_cost)


def run_plugins(args: argparse.Namespace) -> int:
    """List the loaded plugins, their hooks and failure counts; mark built-ins."""
    manager = plugin_manager()
    failures = failure_counts(args.dir or default_storage_dir())
    rows = []
    for name, plugin in manager.list_name_plugin():
        info = manager.info.get(str(name))
        hooks = sorted(caller.name for caller in manager.get_hookcallers(plugin) or [])
        rows.append(
            {
                "name": name,
                "builtin": bool(info and info.builtin),
                "distribution": f"{info.distribution} {info.version}" if info else "-",
                "hooks": hooks,
                "failures": failures.get(str(name), 0)
                + manager.failures.get(str(name), 0),
            }
        )

    report = manager.load_report
    if args.json:
        emit(
            {"plugins": rows, "skipped": report.skipped, "failed": report.failed},
            "json",
        )
        return 0

    table = [_plugin_table_row(row) for row in rows]
    columns = [
        ("name", "PLUGIN"),
        ("distribution", "PACKAGE"),
        ("hooks", "HOOKS"),
        ("failures", "FAILURES"),
    ]
    emit(None, "table", table, columns)

    for name, reason in sorted(report.skipped.items()):
        print(f"not loaded: {name} ({reason})")
    for name, reason in sorted(report.failed.items()):
        print(f"failed to load: {name} ({reason})")
    return 0


def _plugin_table_row(row: dict[str, Any]) -> dict[str, Any]:
    name = f"{row['name']} (built-in)" if row["builtin"] else row["name"]
    hooks = ", ".join(hook.removeprefix("leyline_usage_") for hook in row["hooks"])
    return dict(row, name=name, hooks=hooks)


def run_config_init(args: argparse.Namespace) -> int:
    """Write the commented default config file."""
    path: Path = args.path or config_path()
    if path.exists() and not args.force:
        raise ValueError(f"{path} already exists; pass --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(default_config_text())
    print(f"wrote {path}")
    return 0


def run_config_check(args: argparse.Namespace) -> int:
    """Validate the config file and report which one was read."""
    path = config_path()
    config = parse_config(path)
    if config.path is None:
        print(f"no config file at {path}; using defaults")
    else:
        print(f"{path} is valid ({len(config.pricing_models)} user-priced model(s))")
    return 0


def _table() -> PriceTable:
    error = plugin_manager().config.error
    if error is not None:
        raise ConfigError(error)
    return price_table()


def _lookup(model: str) -> ModelPrices:
    prices = _table().lookup(model)
    if prices is None:
        raise ValueError(
            f"model {model!r} is not in any pricing table; "
            "see 'leyline-usage prices list'"
        )
    return prices


def _period_row(period: Period) -> dict[str, Any]:
    rates = period.rates
    return {
        "effective_from": period.effective_from.isoformat(),
        "input": str(rates.input),
        "output": str(rates.output),
        "cache_read": str(rates.cache_read),
        "cache_write_5m": str(rates.cache_write_5m),
        "cache_write_1h": str(rates.cache_write_1h),
        "tiers": [
            {
                "above_input_tokens": t.above_input_tokens,
                "input": str(t.rates.input),
                "output": str(t.rates.output),
            }
            for t in period.tiers
        ],
        "source": period.source,
        "checked": period.checked.isoformat(),
    }  # fmt: skip


def run_prices_list(args: argparse.Namespace) -> int:
    """List every priced model with its current input and output price."""
    today = date.today()
    rows = []
    for prices in _table().models():
        period = prices.period_at(today)
        rows.append({
            "model": prices.model,
            "provider": prices.provider,
            "input": str(period.rates.input),
            "output": str(period.rates.output),
            "cache_read": str(period.rates.cache_read),
            "tiers": len(period.tiers),
            "aliases": ", ".join(prices.aliases),
        })  # fmt: skip
    columns = [
        ("provider", "PROVIDER"),
        ("model", "MODEL"),
        ("input", "INPUT $/M"),
        ("output", "OUTPUT $/M"),
        ("cache_read", "CACHE READ $/M"),
        ("tiers", "TIERS"),
    ]
    emit(rows, "json" if args.json else "table", rows, columns)
    return 0


def run_prices_show(args: argparse.Namespace) -> int:
    """Show one model's price periods and tiers."""
    prices = _lookup(args.model)
    periods = [_period_row(p) for p in prices.periods]
    data = {
        "model": prices.model,
        "provider": prices.provider,
        "table": prices.table,
        "aliases": list(prices.aliases),
        "periods": periods,
    }
    if args.json:
        emit(data, "json")
        return 0
    print(f"{prices.model} ({prices.provider}), from {prices.table}")
    if prices.aliases:
        print(f"aliases: {', '.join(prices.aliases)}")
    columns = [
        ("effective_from", "FROM"),
        ("input", "INPUT $/M"),
        ("output", "OUTPUT $/M"),
        ("cache_read", "CACHE READ"),
        ("cache_write_5m", "WRITE 5M"),
        ("cache_write_1h", "WRITE 1H"),
        ("source", "SOURCE"),
    ]
    emit(None, "table", periods, columns)
    for period in periods:
        for tier in period["tiers"]:
            print(
                f"from {period['effective_from']}: above "
                f"{tier['above_input_tokens']:,} input tokens, "
                f"input {tier['input']} and output {tier['output']} $/M"
            )
    return 0


def run_prices_cost(args: argparse.Namespace) -> int:
    """Price a usage and name the table, period and tier that priced it."""
    counts = {
        key: getattr(args, key)
        for key in ("input_tokens", "output_tokens", "cache_read_tokens",
                    "cache_write_5m_tokens", "cache_write_1h_tokens")
    }  # fmt: skip
    for key, value in counts.items():
        if value < 0:
            raise ValueError(
                f"--{key.removesuffix('_tokens').replace('_', '-')} must be zero "
                f"or more, got {value}"
            )
    counts["cache_write_tokens"] = (
        counts["cache_write_5m_tokens"] + counts["cache_write_1h_tokens"]
    )

    when = args.at or date.today()
    prices = _lookup(args.model)
    quote = _table().quote(prices.model, when, counts)
    assert quote is not None

    data = {
        "model": prices.model,
        "cost_usd": format(quote.cost.normalize(), "f"),
        "table": prices.table,
        "period_from": quote.period.effective_from.isoformat(),
        "tier_above_input_tokens": quote.tier.above_input_tokens
        if quote.tier
        else None,
        "date": when.isoformat(),
        **counts,
    }
    if args.json:
        emit(data, "json")
        return 0

    tier = (
        f"long-context tier above {quote.tier.above_input_tokens:,} input tokens"
        if quote.tier
        else "base tier"
    )
    print(f"${quote.cost:.6f}  {prices.model} on {when.isoformat()}")
    print(
        f"table {prices.table}, "
        f"period from {quote.period.effective_from.isoformat()}, {tier}"
    )
    return 0
