"""Pricing from genai-prices with overrides; unknown prices are None, never zero."""

from __future__ import annotations

import pytest

from rlm_engine.lm import PricedModel, PriceOverride, Pricer, ScriptedModel, StreamDone
from rlm_engine.types import Completion, Message, Usage

USAGE = Usage(input_tokens=10_000, output_tokens=2_000, cached_tokens=0, requests=1)


def completion(model: str, usage: Usage = USAGE) -> Completion:
    return Completion(text="", model=model, usage=usage, provider=model.split("/")[0])


def test_known_model_has_positive_cost() -> None:
    cost = Pricer().cost(completion("openai/gpt-4o-mini"))
    assert cost is not None and cost > 0


def test_cached_input_is_cheaper() -> None:
    pricer = Pricer()
    full = pricer.cost(completion("openai/gpt-4o-mini"))
    cached = pricer.cost(completion("openai/gpt-4o-mini", Usage(10_000, 2_000, 8_000, 1)))
    assert full is not None and cached is not None
    assert 0 < cached < full


@pytest.mark.parametrize(
    "model",
    [
        "openai/no-such-model-xyz",
        "ollama/qwen3-coder",
        "vllm/gpt-4o-mini",
        "sim/sim-model",
        "scripted/replies.jsonl",
        "nonsense",
    ],
)
def test_unknown_prices_are_none(model: str) -> None:
    assert Pricer().cost(completion(model)) is None


def test_override_wins_and_wildcards_apply() -> None:
    pricer = Pricer(
        {
            "openai:gpt-4o-mini": PriceOverride(1.0, 2.0, cached_input_per_mtok=0.5),
            "sim/*": PriceOverride(0.0, 0.0),
        }
    )
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000, cached_tokens=500_000)
    assert pricer.cost(completion("openai/gpt-4o-mini", usage)) == pytest.approx(
        0.5 * 1.0 + 0.5 * 0.5 + 2.0
    )
    assert pricer.cost(completion("sim/any-model")) == 0.0
    assert pricer.cost(completion("scripted/x")) is None


def test_other_providers_map_to_catalogue() -> None:
    pricer = Pricer()
    for model in ("anthropic/claude-sonnet-4-5", "gemini/gemini-2.5-flash"):
        cost = pricer.cost(completion(model))
        assert cost is not None and cost > 0, model


async def test_priced_model_sets_cost_on_complete_and_stream() -> None:
    inner = ScriptedModel(["a", "b"], name="scripted/demo")
    model = PricedModel(inner, Pricer({"scripted/demo": PriceOverride(1_000_000.0, 0.0)}))
    done = await model.complete([Message("user", "abcd")])
    assert done.cost_usd == pytest.approx(1.0)  # one estimated input token at $1 each
    events = [event async for event in model.stream([Message("user", "abcd")])]
    final = events[-1]
    assert isinstance(final, StreamDone)
    assert final.completion.cost_usd == pytest.approx(1.0)
    assert model.name == "scripted/demo"


async def test_priced_model_keeps_unknown_as_none() -> None:
    model = PricedModel(ScriptedModel(["a"]))
    assert (await model.complete([Message("user", "q")])).cost_usd is None


def test_repeated_costs_match_a_fresh_pricer() -> None:
    """The pricer resolves each model string once; later calls price the same way."""
    pricer = Pricer({"sim/*": PriceOverride(1.0, 2.0)})
    usages = [Usage(100 * i, 10 * i, i, 1) for i in range(1, 5)]
    for model in ("openai/gpt-4o-mini", "sim/sim-model", "ollama/qwen3", "nonsense"):
        for usage in usages:
            fresh = Pricer({"sim/*": PriceOverride(1.0, 2.0)}).cost_of(model, usage)
            assert pricer.cost_of(model, usage) == fresh


async def test_unknown_price_leaves_the_completion_as_it_is() -> None:
    inner = ScriptedModel(["ok"], name="sim/sim-model")
    got = await PricedModel(inner).complete([Message("user", "hi")])
    assert got.cost_usd is None
    priced = await PricedModel(
        ScriptedModel(["ok"], name="sim/sim-model"), Pricer({"sim/*": PriceOverride(1.0, 1.0)})
    ).complete([Message("user", "hi")])
    assert priced.cost_usd is not None and priced.cost_usd > 0


def test_catalogue_costs_are_the_librarys_own_for_repeated_usages() -> None:
    from datetime import UTC, datetime

    import genai_prices
    from genai_prices import data_snapshot

    provider, model = data_snapshot.get_snapshot().find_provider_model(
        "gpt-4o-mini", None, "openai", None
    )
    pricer = Pricer()
    for usage in [Usage(1_000, 200, 0, 1), Usage(1_000, 200, 600, 1), Usage(7, 3, 9, 1)] * 2:
        direct = model.calc_price(
            genai_prices.Usage(
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cache_read_tokens=min(usage.cached_tokens, usage.input_tokens),
            ),
            provider,
            genai_request_timestamp=datetime.now(tz=UTC),
        )
        assert pricer.cost_of("openai/gpt-4o-mini", usage) == float(direct.total_price)
