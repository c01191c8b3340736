"""Pricing tables: lookup, periods, tiers, fallback and malformed tables."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from leyline_usage import PricingError
from leyline_usage.pricing import PriceTable, bundled_table_paths, read_table

TABLE = """
provider = "example"

[models."model-a"]
aliases = ["model-a-20250101"]

[[models."model-a".periods]]
effective_from = 2025-01-01
source = "https://example.com/pricing"
checked = 2025-06-01
input = 2.0
output = 10.0
cache_read = 0.2
cache_write_5m = 2.5
cache_write_1h = 4.0

[[models."model-a".periods]]
effective_from = 2025-06-01
source = "https://example.com/pricing"
checked = 2025-06-01
input = 1.0
output = 5.0

[[models."model-a".periods.tiers]]
above_input_tokens = 200000
input = 3.0
output = 15.0
"""


@pytest.fixture
def table(tmp_path: Path) -> PriceTable:
    path = tmp_path / "example.toml"
    path.write_text(TABLE)
    return PriceTable.load([path])


def test_bundled_tables_load() -> None:
    paths = bundled_table_paths()
    table = PriceTable.load(paths)

    assert {p.name for p in paths} >= {"anthropic.toml", "openai.toml"}
    opus = table.lookup("claude-opus-4-6")
    assert opus is not None
    assert opus.period_at(date(2026, 6, 1)).rates.input == Decimal("5.0")
    assert table.lookup("claude-sonnet-4-5-20250929") is table.lookup(
        "claude-sonnet-4-5"
    )


def test_every_bundled_period_names_source(table: PriceTable) -> None:
    for model in PriceTable.load(bundled_table_paths()).models():
        for period in model.periods:
            assert period.source.startswith("https://"), model.model
            assert (
                period.checked >= period.effective_from or period.checked.year >= 2025
            )


def test_prices_are_decimal(table: PriceTable) -> None:
    model = table.lookup("model-a")

    assert model is not None
    assert isinstance(model.periods[0].rates.input, Decimal)
    assert model.periods[0].rates.cache_read == Decimal("0.2")


def test_price_history_follows_date(table: PriceTable) -> None:
    counts = {"input_tokens": 100_000, "output_tokens": 100_000}

    early = table.quote("model-a", date(2025, 3, 1), counts)
    late = table.quote("model-a", date(2025, 7, 1), counts)
    before_first = table.quote("model-a", date(2024, 1, 1), counts)

    assert early is not None
    assert late is not None
    assert before_first is not None
    assert early.cost == Decimal("1.2")
    assert late.cost == Decimal("0.6")
    assert before_first.cost == Decimal("1.2")


def test_tier_prices_whole_request_and_counts_cache(table: PriceTable) -> None:
    below = {
        "input_tokens": 100_000,
        "cache_read_tokens": 100_000,
        "output_tokens": 1000,
    }
    above = {
        "input_tokens": 100_000,
        "cache_read_tokens": 100_001,
        "output_tokens": 1000,
    }

    low = table.quote("model-a", date(2025, 7, 1), below)
    high = table.quote("model-a", date(2025, 7, 1), above)

    assert low is not None and high is not None
    assert low.tier is None
    assert high.tier is not None and high.tier.above_input_tokens == 200_000
    # Missing cache prices in the tier fall back to its input price.
    assert high.cost == (100_000 * 3 + 100_001 * 3 + 1000 * 15) / Decimal(1_000_000)


def test_cache_write_split_priced_separately(table: PriceTable) -> None:
    counts = {
        "cache_write_tokens": 1_000_000,
        "cache_write_5m_tokens": 400_000,
        "cache_write_1h_tokens": 500_000,
    }

    quote = table.quote("model-a", date(2025, 3, 1), counts)

    # 100,000 unsplit tokens are priced as 5-minute writes.
    assert quote is not None
    assert quote.cost == Decimal("0.5") * Decimal("2.5") + Decimal("0.5") * 4


@pytest.mark.parametrize(
    "name",
    [
        "model-a",
        "MODEL-A",
        "model-a-20250101",
        "anthropic/model-a",
        "model-a@20250101",
        "model-a-latest",
    ],
)
def test_lookup_variants(table: PriceTable, name: str) -> None:
    assert table.lookup(name) is not None


def test_unknown_model_has_no_quote(table: PriceTable) -> None:
    assert table.quote("model-z", date(2025, 1, 1), {"input_tokens": 5}) is None


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("provider = 'x'\n", "models"),
        (
            "[models.m]\n[[models.m.periods]]\neffective_from = 2025-01-01\nsource='s'\nchecked=2025-01-01\noutput = 1.0\n",
            "input",
        ),
        (
            "[models.m]\n[[models.m.periods]]\neffective_from = 2025-01-01\nsource='s'\nchecked=2025-01-01\ninput = -1.0\noutput = 1.0\n",
            "input",
        ),
        (
            "[models.m]\n[[models.m.periods]]\neffective_from = 'soon'\nsource='s'\nchecked=2025-01-01\ninput = 1.0\noutput = 1.0\n",
            "effective_from",
        ),
        (
            "[models.m]\n[[models.m.periods]]\neffective_from = 2025-01-01\nchecked=2025-01-01\ninput = 1.0\noutput = 1.0\n",
            "source",
        ),
        ("[models.m]\nperiods = 3\n", "periods"),
        ("[models.m\n", "invalid TOML"),
    ],
)
def test_malformed_table_names_file_and_key(
    tmp_path: Path, text: str, key: str
) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(text)

    with pytest.raises(PricingError, match=key) as raised:
        read_table(path)

    assert "broken.toml" in str(raised.value)


def test_error_names_line_of_model(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("provider = 'x'\n\n[models.good]\n[[models.good.periods]]\n"
                    "effective_from = 2025-01-01\nsource='s'\nchecked=2025-01-01\ninput=1.0\noutput=1.0\n"
                    "\n[models.bad]\n[[models.bad.periods]]\neffective_from = 2025-01-01\n")  # fmt: skip

    with pytest.raises(PricingError, match="line 11"):
        read_table(path)
