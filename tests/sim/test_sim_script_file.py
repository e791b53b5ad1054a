"""Reply scripts in JSONL files: the format, its errors, and how replies are handed out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from rlm_engine.errors import ConfigurationError
from rlm_engine.sim.oracle import ROOT_PROMPT_START
from rlm_engine.sim.script_file import ScriptFilePolicy, load_script
from sim_support import StartSim

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "scripted.jsonl"


def root(*replies: str) -> list[dict[str, Any]]:
    """A root conversation that has had ``replies`` from the model so far."""
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": f"{ROOT_PROMPT_START} ..."},
        {"role": "user", "content": "question"},
    ]
    for reply in replies:
        messages += [{"role": "assistant", "content": reply}, {"role": "user", "content": "ok"}]
    return messages


SUB = [{"role": "user", "content": "a sub-question"}]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "script.jsonl"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_documented_example_parses() -> None:
    script = load_script(EXAMPLE)
    assert len(script.root) == 3 and len(script.sub) == 1 and script.shared is None
    assert script.root[-1].endswith("FINAL_VAR(topic)")


def test_roles_are_served_in_order_each_from_its_own_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '# a comment\n{"root": "r1"}\n\n{"sub": "s1"}\n{"root": "r2"}\n{"sub": "s2"}\n',
    )
    policy = ScriptFilePolicy.from_file(path)
    assert policy("m", root()) == "r1"
    assert policy("m", SUB) == "s1"
    assert policy("m", SUB) == "s2"
    assert policy("m", root("r1")) == "r2"


def test_plain_replies_answer_every_request_in_order(tmp_path: Path) -> None:
    policy = ScriptFilePolicy.from_file(write(tmp_path, '"one"\n{"reply": "two"}\n"three"\n'))
    assert [policy("m", root()), policy("m", SUB), policy("m", root("one"))] == [
        "one",
        "two",
        "three",
    ]


def test_past_the_end_is_an_error_naming_the_script(tmp_path: Path) -> None:
    path = write(tmp_path, '{"root": "r1"}\n')
    policy = ScriptFilePolicy.from_file(path)
    policy("m", root())
    with pytest.raises(
        RuntimeError, match=r"no root reply left: it has 1 and this is root request 2"
    ):
        policy("m", root("r1"))
    with pytest.raises(RuntimeError, match="no sub reply left: it has 0"):
        policy("m", SUB)


def test_a_new_run_after_the_script_is_used_up_starts_it_over(tmp_path: Path) -> None:
    policy = ScriptFilePolicy.from_file(write(tmp_path, '{"root": "r1"}\n{"sub": "s1"}\n'))
    assert [policy("m", root()), policy("m", SUB)] == ["r1", "s1"]
    assert [policy("m", root()), policy("m", SUB)] == ["r1", "s1"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"root": "ok"}\n{"root": "unterminated}\n', r":2: not valid JSON \(Unterminated string"),
        ('{"root": "ok"}\n[1, 2]\n', ":2: expected a JSON object or string, got list"),
        (
            '{"assistant": "x"}\n',
            r""":1: expected one key, "root", "sub" or "reply"; got \['assistant'\]""",
        ),
        ('{"root": "a", "sub": "b"}\n', r":1: expected one key.*got \['root', 'sub'\]"),
        ('{"sub": 42}\n', ':1: the value of "sub" must be a string, not int'),
        ('{"root": "a"}\n"plain"\n', ":2: a plain reply here but a root/sub key on line 1"),
        ("\n# only comments\n", "the script has no replies"),
    ],
)
def test_a_malformed_script_names_the_file_line_and_problem(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigurationError, match=problem) as info:
        load_script(path)
    assert str(info.value).startswith(str(path))
    assert "docs/examples/scripted.jsonl" in info.value.hint


def test_a_missing_script_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read the reply script"):
        load_script(tmp_path / "absent.jsonl")


async def test_the_server_answers_from_the_script_then_refuses(
    start_sim: StartSim, tmp_path: Path
) -> None:
    sim = await start_sim(policy=ScriptFilePolicy.from_file(write(tmp_path, '{"sub": "s1"}\n')))
    body = {"model": "sim", "messages": SUB}
    async with httpx.AsyncClient() as client:
        first = await client.post(f"{sim.url}/chat/completions", json=body)
        second = await client.post(f"{sim.url}/chat/completions", json=body)
    assert first.json()["choices"][0]["message"]["content"] == "s1"
    assert second.status_code == 400
    assert "no sub reply left" in second.json()["error"]["message"]
