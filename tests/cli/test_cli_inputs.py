"""`rlm ask`'s contexts are checked before a run starts, on the user's own paths; stdin,
bytes and other encodings reach the REPL; the model flags reach the requests."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_support import cli, cli_env, is_root

from rlm_engine.cli import inputs
from rlm_engine.cli.inputs import ContextInputError, ReadOptions, check_contexts, prepare_contexts
from rlm_engine.errors import ConfigurationError
from rlm_engine.service.build import build_rlm
from rlm_engine.service.provider_env import provider_env
from rlm_engine.service.spec import RunSpec
from rlm_engine.settings import Settings
from rlm_engine.sim.config import SimConfig
from rlm_engine.sim.policies import CallablePolicy
from rlm_engine.sim.runner import SimServerThread
from rlm_engine.store.factory import open_store
from rlm_engine.store.records import Run
from rlm_engine.types import ModelSettings


def write(path: Path, data: bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return str(path)


PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))

# name, bytes, what the error says, what its hint says
REFUSED = [
    (
        "data.json",
        b'{"rows": [1, 2,\n  3,, 4]}',
        ("data.json", "is not valid JSON", "line 2, column 5"),
        ("fix the file", "does not end in .json"),
    ),
    ("empty.txt", b"", ("empty.txt", "is empty"), ("leave the --context out",)),
    ("blob.bin", bytes(range(256)) * 8, ("blob.bin", "binary"), ("--binary bytes",)),
    ("logo.png", PNG, ("logo.png", "binary"), ("--binary bytes",)),
]


@pytest.mark.parametrize(
    ("name", "data", "cause", "hint"), REFUSED, ids=[row[0] for row in REFUSED]
)
def test_a_context_that_cannot_be_used_is_refused_naming_the_users_path(
    tmp_path: Path, name: str, data: bytes, cause: tuple[str, ...], hint: tuple[str, ...]
) -> None:
    path = write(tmp_path / name, data)
    with pytest.raises(ContextInputError) as error:
        check_contexts([path], ReadOptions())
    for part in cause:
        assert part in str(error.value)
    assert path in str(error.value)
    for part in hint:
        assert part in error.value.hint


def test_binary_is_loaded_as_bytes_with_a_warning_when_asked(tmp_path: Path) -> None:
    path = write(tmp_path / "logo.png", PNG)
    found = check_contexts([path], ReadOptions(binary="bytes"))
    assert found.warnings == [f"context file {path} is binary; it is read as bytes"]


def test_text_that_is_not_utf8_warns_with_the_encoding_and_the_count(tmp_path: Path) -> None:
    path = write(tmp_path / "notes.txt", "café crème\n".encode("latin-1") * 3)
    found = check_contexts([path], ReadOptions())
    (warning,) = found.warnings
    assert path in warning
    assert "not valid utf-8: 6 bytes (the first at byte 3) were replaced with U+FFFD" in warning
    assert "read as utf-8" in warning and "--encoding" in warning
    assert check_contexts([path], ReadOptions(encoding="latin-1")).warnings == []


def test_the_utf8_check_streams_across_chunk_edges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inputs, "CHUNK_BYTES", 3)  # every multi-byte character is cut
    text = "naïve € 𝄞 " * 20
    assert check_contexts([write(tmp_path / "ok.txt", text.encode())], ReadOptions()).warnings == []
    bad = write(tmp_path / "bad.txt", text.encode() + b"\xff" + text.encode())
    (warning,) = check_contexts([bad], ReadOptions()).warnings
    assert f"1 bytes (the first at byte {len(text.encode())})" in warning


def test_a_json_context_parses_with_the_chosen_encoding(tmp_path: Path) -> None:
    path = write(tmp_path / "d.json", '{"name": "café"}'.encode("latin-1"))
    assert check_contexts([path], ReadOptions(encoding="latin-1")).warnings == []


def test_json_above_the_check_size_is_left_to_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inputs, "JSON_CHECK_BYTES", 8)
    path = write(tmp_path / "big.json", b'{"rows": [1, 2, 3')
    assert check_contexts([path], ReadOptions()).warnings == []


def test_a_directory_has_each_of_its_files_checked(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    write(root / "README.md", b"# readme\n")
    write(root / "pkg" / "__init__.py", b"")  # an empty file of a directory is fine
    write(root / "pkg" / "broken.json", b"{")  # in a corpus it is text: not parsed
    write(root / ".git" / "index", bytes(range(256)))  # version control is skipped
    write(root / "legacy.txt", "naïve".encode("latin-1"))
    found = check_contexts([str(root)], ReadOptions())
    assert found.warnings == [
        f"context file {root / 'legacy.txt'} is not valid utf-8: 1 bytes (the first at byte "
        "2) were replaced with U+FFFD; it is read as utf-8; pass --encoding NAME (e.g. "
        "--encoding latin-1) to decode it as another encoding"
    ]
    write(root / "img" / "a.png", PNG)
    with pytest.raises(ContextInputError) as error:
        check_contexts([str(root)], ReadOptions())
    assert str(root / "img" / "a.png") in str(error.value)
    found = check_contexts([str(root)], ReadOptions(binary="bytes"))
    assert f"context file {root / 'img' / 'a.png'} is binary; it is read as bytes by " in "".join(
        found.warnings
    )


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ("empty dir", "holds no files"),
        ("dir with another", "must be the only --context"),
        ("missing", "does not exist"),
    ],
)
def test_directories_and_paths_that_cannot_be_contexts(
    tmp_path: Path, layout: str, message: str
) -> None:
    (tmp_path / "d").mkdir()
    paths = {
        "empty dir": [str(tmp_path / "d")],
        "dir with another": [str(tmp_path / "d"), write(tmp_path / "a.txt", b"a")],
        "missing": [str(tmp_path / "nope.txt")],
    }[layout]
    with pytest.raises(ContextInputError, match=message):
        check_contexts(paths, ReadOptions())


# --- through the CLI, against the simulator ------------------------------------------------


@pytest.fixture
def sim() -> Iterator[SimServerThread]:
    """Root: one cell that answers with what the REPL sees as ``context``."""

    def reply(messages: list[dict[str, Any]]) -> str:
        if not is_root(messages):
            return "sub"
        return (
            "```repl\n"
            "c = context\n"
            "FINAL(type(c).__name__ + ':' + (c.hex() if isinstance(c, bytes) else str(c)))\n"
            "```"
        )

    with SimServerThread(SimConfig(api_key="sim-key-0042"), CallablePolicy(reply)) as server:
        yield server


def env_for(tmp_path: Path, sim: SimServerThread) -> dict[str, str]:
    env = cli_env(tmp_path, sim.url)
    env["OPENAI_API_KEY"] = "sim-key-0042"
    return env


def ask(*extra: str) -> list[str]:
    return ["ask", "What is the context?", "--model", "openai/m", "--json", *extra]


def test_context_from_stdin_is_answered_and_kept_for_resume(
    tmp_path: Path, sim: SimServerThread
) -> None:
    env = env_for(tmp_path, sim)
    proc = cli(ask("--context", "-"), env, input="piped notes: 4417\n")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["answer"] == "str:piped notes: 4417\n"
    (kept,) = (tmp_path / "home" / "stdin").iterdir()
    assert kept.read_text() == "piped notes: 4417\n"
    run = stored_run(env, out["run_id"])
    assert run.settings["context"] == [str(kept)]
    assert run.context_hash is not None  # pinned like any file


def stored_run(env: dict[str, str], run_id: str) -> Run:
    store = open_store(None, Path(env["RLM_HOME"]))
    try:
        run = store.get_run(run_id)
    finally:
        store.close()
    assert run is not None
    return run


def test_an_empty_stdin_is_refused_before_any_request(tmp_path: Path, sim: SimServerThread) -> None:
    proc = cli(ask("--context", "-"), env_for(tmp_path, sim), input="")
    assert proc.returncode == 2
    assert "stdin (--context -) is empty" in proc.stderr and "Traceback" not in proc.stderr
    assert sim.server.requests == []


def test_a_refused_context_exits_2_before_the_store_or_a_model_is_touched(
    tmp_path: Path, sim: SimServerThread
) -> None:
    bad = write(tmp_path / "data.json", b'{"rows": [1, 2,')
    proc = cli(ask("--context", bad), env_for(tmp_path, sim))
    assert proc.returncode == 2
    assert bad in proc.stderr and "line 1, column 16" in proc.stderr
    assert "rlm: hint: fix the file" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert sim.server.requests == []
    assert not (tmp_path / "home" / "rlm.db").exists()


def test_binary_reaches_the_repl_as_bytes_with_the_flag(
    tmp_path: Path, sim: SimServerThread
) -> None:
    path = write(tmp_path / "logo.png", PNG)
    proc = cli(ask("--context", path, "--binary", "bytes"), env_for(tmp_path, sim))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["answer"] == "bytes:" + PNG.hex()
    assert f"rlm: warning: context file {path} is binary; it is read as bytes" in proc.stderr


def test_text_reaches_the_repl_decoded_as_the_given_encoding(
    tmp_path: Path, sim: SimServerThread
) -> None:
    path = write(tmp_path / "notes.txt", "café".encode("latin-1"))
    env = env_for(tmp_path, sim)
    proc = cli(ask("--context", path), env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["answer"] == "str:caf\ufffd"
    assert "1 bytes (the first at byte 3) were replaced" in proc.stderr
    proc = cli(ask("--context", path, "--encoding", "latin-1"), env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["answer"] == "str:café"
    assert "warning" not in proc.stderr


def test_model_flags_reach_the_requests_and_the_key_is_never_stored(
    tmp_path: Path, sim: SimServerThread
) -> None:
    env = cli_env(tmp_path, "http://127.0.0.1:9/v1")  # the flag's URL must win over this
    env["MY_SIM_KEY"] = "sim-key-0042"
    flags = ["--base-url", sim.url, "--api-key-env", "MY_SIM_KEY"]
    ctx = write(tmp_path / "notes.txt", b"notes\n")
    proc = cli(
        ask("--context", ctx, *flags, "--temperature", "0.3", "--max-output-tokens", "777"), env
    )
    assert proc.returncode == 0, proc.stderr
    (root,) = [r for r in sim.server.requests if is_root(list(r.messages))]
    assert (root.temperature, root.max_tokens, root.status) == (0.3, 777, 200)
    run_id = json.loads(proc.stdout)["run_id"]
    stored = stored_run(env, run_id).settings
    assert stored["base_url"] == sim.url and stored["api_key_env"] == "MY_SIM_KEY"
    assert (stored["temperature"], stored["max_output_tokens"]) == (0.3, 777)
    assert "sim-key-0042" not in json.dumps(stored)


def test_an_unset_key_variable_is_a_usage_error(tmp_path: Path, sim: SimServerThread) -> None:
    env = cli_env(tmp_path, sim.url)
    proc = cli(ask("--api-key-env", "NOT_SET_ANYWHERE"), env)
    assert proc.returncode == 2
    assert "--api-key-env names NOT_SET_ANYWHERE, which is not set" in proc.stderr
    assert "rlm: hint: export NOT_SET_ANYWHERE=<your key>" in proc.stderr
    assert sim.server.requests == []


def test_stdin_is_checked_like_a_file_and_named_as_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", _Stdin(bytes(range(256))))
    with pytest.raises(ContextInputError) as error:
        prepare_contexts(["-"], ReadOptions(), tmp_path / "home")
    assert str(error.value) == "context file <stdin> looks binary, not text"
    monkeypatch.setattr("sys.stdin", _Stdin(b"one\n"))
    with pytest.raises(ContextInputError, match="more than once"):
        prepare_contexts(["-", "-"], ReadOptions(), tmp_path / "home")


class _Stdin:
    def __init__(self, data: bytes) -> None:
        self.buffer = io.BytesIO(data)


def test_stored_settings_rebuild_the_same_rlm(tmp_path: Path) -> None:
    """What `rlm runs resume` does with a run's settings: same limits, sampling settings
    and endpoint; the key is read again from the variable the run names."""
    stored = {
        "model": "openai/m",
        "max_tokens": 5000,
        "max_output_chars": 900,
        "temperature": 0.3,
        "max_output_tokens": 777,
        "sub_temperature": 0.0,
        "base_url": "http://127.0.0.1:9/v1",
        "api_key_env": "MY_SIM_KEY",
        "isolation": "none",
        "no_default_plugins": True,
    }
    settings = Settings.from_env({"RLM_HOME": str(tmp_path), "MY_SIM_KEY": "sim-key-0042"})
    rlm = build_rlm(RunSpec.from_json(stored), settings, on_event=lambda _: None)
    assert (rlm.config.max_tokens, rlm.config.max_output_chars) == (5000, 900)
    assert rlm.config.root_settings == ModelSettings(temperature=0.3, max_output_tokens=777)
    assert rlm.config.sub_settings == ModelSettings(temperature=0.0)
    with pytest.raises(ConfigurationError, match="MY_SIM_KEY, which is not set"):
        build_rlm(
            RunSpec.from_json(stored),
            Settings.from_env({"RLM_HOME": str(tmp_path)}),
            on_event=print,
        )


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("openai/m", {"OPENAI_BASE_URL": "http://h/v1", "OPENAI_API_KEY": "k"}),
        ("vllm/m", {"VLLM_BASE_URL": "http://h/v1", "VLLM_API_KEY": "k"}),
        ("anthropic/claude", {"ANTHROPIC_BASE_URL": "http://h/v1", "ANTHROPIC_API_KEY": "k"}),
    ],
)
def test_the_flags_set_the_providers_own_variables(model: str, expected: dict[str, str]) -> None:
    env = provider_env({"MINE": "k"}, model, "http://h/v1", "MINE")
    assert {name: env[name] for name in expected} == expected


def test_a_flag_a_provider_cannot_use_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="--base-url does not apply to gemini"):
        provider_env({}, "gemini/g", "http://h/v1", None)
    with pytest.raises(ConfigurationError, match="--api-key-env does not apply to ollama"):
        provider_env({"K": "k"}, "ollama/llama3.2", None, "K")


def test_a_replay_sees_the_stdin_bytes_after_the_kept_file_is_gone(
    tmp_path: Path, sim: SimServerThread
) -> None:
    env = env_for(tmp_path, sim)
    proc = cli(ask("--context", "-"), env, input="tide table: 0614\n")
    assert proc.returncode == 0, proc.stderr
    run_id = json.loads(proc.stdout)["run_id"]
    for kept in (tmp_path / "home" / "stdin").iterdir():
        kept.unlink()
    replayed = cli(["replay", run_id, "--json"], env)
    assert replayed.returncode == 0, replayed.stderr
    assert json.loads(replayed.stdout)["answer"] == "str:tide table: 0614\n"
