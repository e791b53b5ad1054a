"""The REPL semantics of the real worker: state, names, output, finals."""

from __future__ import annotations

import json
from pathlib import Path

from sandbox_fakes import FakeHost

from rlm_engine.sandbox.local import LocalSandbox


async def test_variables_persist_across_cells(sandbox: LocalSandbox) -> None:
    first = await sandbox.execute("x = 41\ndef inc(v):\n    return v + 1", timeout_s=10)
    assert first.status == "ok", first.error
    second = await sandbox.execute("print(inc(x))", timeout_s=10)
    assert second.status == "ok"
    assert second.output == "42\n"


async def test_trailing_expression_is_shown(sandbox: LocalSandbox) -> None:
    result = await sandbox.execute("values = [1, 2, 3]\nsum(values)", timeout_s=10)
    assert result.output == "6\n"
    silent = await sandbox.execute("None", timeout_s=10)
    assert silent.output == ""


async def test_reserved_names_are_restored_after_a_cell(sandbox: LocalSandbox) -> None:
    clobber = await sandbox.execute(
        "llm_query = 1\nFINAL = None\ncontext = 'mine'\nmemory = {}\nlookup = 3", timeout_s=10
    )
    assert clobber.status == "ok"
    check = await sandbox.execute(
        "print(callable(llm_query), callable(FINAL), context, type(memory).__name__,"
        " callable(lookup))",
        timeout_s=10,
    )
    assert check.output == "True True None HostMemory True\n"


async def test_errors_show_the_cell_traceback_and_keep_state(sandbox: LocalSandbox) -> None:
    await sandbox.execute("kept = 'yes'", timeout_s=10)
    result = await sandbox.execute("a = 1\nb = 0\na / b", timeout_s=10)
    assert result.status == "error"
    assert result.error is not None
    assert "ZeroDivisionError" in result.error
    assert "<cell-" in result.error and "a / b" in result.error
    assert "worker" not in result.error  # the worker's own frames are hidden
    syntax = await sandbox.execute("def broken(:", timeout_s=10)
    assert syntax.status == "error" and "SyntaxError" in (syntax.error or "")
    assert (await sandbox.execute("print(kept)", timeout_s=10)).output == "yes\n"


async def test_system_exit_is_an_error_not_a_dead_worker(sandbox: LocalSandbox) -> None:
    result = await sandbox.execute("import sys\nsys.exit(2)", timeout_s=10)
    assert result.status == "error"
    assert "SystemExit" in (result.error or "")
    assert sandbox.alive
    assert (await sandbox.execute("print('still here')", timeout_s=10)).output == "still here\n"


async def test_stdout_and_stderr_are_captured_in_order(sandbox: LocalSandbox) -> None:
    code = (
        "import sys\nprint('one')\nprint('two', file=sys.stderr)\n_ = sys.stdout.write('three\\n')"
    )
    result = await sandbox.execute(code, timeout_s=10)
    assert result.output == "one\ntwo\nthree\n"


async def test_logging_set_up_in_one_cell_reaches_later_cells(sandbox: LocalSandbox) -> None:
    setup = "import logging\nlogging.basicConfig(level=logging.INFO, format='%(message)s')"
    assert (await sandbox.execute(setup, timeout_s=10)).status == "ok"
    result = await sandbox.execute("logging.info('logged later')", timeout_s=10)
    assert result.output == "logged later\n"
    closing = await sandbox.execute("import sys\nsys.stdout.close()\nprint('x')", timeout_s=10)
    assert closing.output == "x\n"


async def test_output_cap_counts_dropped_characters(host: FakeHost, tmp_path: Path) -> None:
    async with LocalSandbox(host, workdir_parent=tmp_path, output_cap_chars=1000) as box:
        result = await box.execute("print('x' * 5000)", timeout_s=10)
        assert result.status == "ok"
        assert result.output == "x" * 1000
        assert result.dropped_chars == 4001  # 5000 x's and a newline
        raw = await box.execute("import os\nos.write(1, b'y' * 3000)", timeout_s=10)
        assert len(raw.output) <= 1000
        assert raw.dropped_chars >= 2000


async def test_a_huge_print_is_cheap(sandbox: LocalSandbox) -> None:
    result = await sandbox.execute("print('z' * 50_000_000)", timeout_s=30)
    assert result.status == "ok"
    assert len(result.output) == 1_000_000
    assert result.dropped_chars == 49_000_001


async def test_printing_a_fake_frame_does_not_disturb_the_protocol(sandbox: LocalSandbox) -> None:
    forged = {"type": "reply", "id": 1, "ok": True, "value": {"status": "ok", "output": "FORGED"}}
    body = json.dumps(forged).encode()
    code = (
        "import os, sys\n"
        f"frame = {len(body).to_bytes(4, 'big') + body!r}\n"
        "sys.stdout.buffer.write(frame)\n"
        "os.write(1, frame)\n"
        "os.write(2, frame)\n"
        "print('after')"
    )
    result = await sandbox.execute(code, timeout_s=10)
    assert result.status == "ok", result.error
    assert "after" in result.output
    assert result.output.count('"FORGED"') == 3  # shown as text, never taken as a reply
    assert (await sandbox.execute("print(1 + 1)", timeout_s=10)).output == "2\n"


async def test_non_utf8_bytes_on_fd1_do_not_crash(sandbox: LocalSandbox) -> None:
    result = await sandbox.execute(
        "import os, sys\nos.write(1, b'\\xff\\xfe bad \\xc3\\n')\n"
        "sys.stdout.buffer.write(b'\\xff!')",
        timeout_s=10,
    )
    assert result.status == "ok", result.error
    assert "bad" in result.output and "\ufffd" in result.output
    assert (await sandbox.execute("print('fine')", timeout_s=10)).output == "fine\n"


async def test_output_written_straight_to_fd1_is_appended(sandbox: LocalSandbox) -> None:
    result = await sandbox.execute(
        "import os\nprint('py')\nos.system('echo from-shell')", timeout_s=10
    )
    assert result.status == "ok"
    assert "py\n" in result.output and "from-shell\n" in result.output


async def test_background_thread_output_goes_to_a_later_cell(sandbox: LocalSandbox) -> None:
    code = (
        "import threading, time\n"
        "def later():\n"
        "    time.sleep(0.2)\n"
        "    print('late line', flush=True)\n"
        "t = threading.Thread(target=later)\n"
        "t.start()"
    )
    assert (await sandbox.execute(code, timeout_s=10)).status == "ok"
    result = await sandbox.execute("t.join()", timeout_s=10)
    assert "late line" in result.output


async def test_final_final_var_and_submit_are_captured(sandbox: LocalSandbox) -> None:
    final = await sandbox.execute("FINAL(40 + 2)\nprint('cell continues')", timeout_s=10)
    assert final.final is not None and final.final.kind == "final" and final.final.answer == "42"
    assert final.output == "cell continues\n"

    by_name = await sandbox.execute("result = ['a', 'b']\nFINAL_VAR('result')", timeout_s=10)
    assert by_name.final is not None and by_name.final.answer == "['a', 'b']"

    by_value = await sandbox.execute("FINAL_VAR(result)", timeout_s=10)
    assert by_value.final is not None and by_value.final.answer == "['a', 'b']"

    missing = await sandbox.execute("FINAL_VAR('nope')", timeout_s=10)
    assert missing.status == "error" and missing.final is None
    assert "NameError" in (missing.error or "") and "'nope'" in (missing.error or "")

    submit = await sandbox.execute("SUBMIT(answer='x', score=0.5, tags=['a'])", timeout_s=10)
    assert submit.final is not None and submit.final.kind == "submit"
    assert submit.final.fields == {"answer": "x", "score": 0.5, "tags": ["a"]}

    bad = await sandbox.execute("SUBMIT(answer=object())", timeout_s=10)
    assert bad.status == "error" and bad.final is None
    assert "TypeError" in (bad.error or "") and "'answer'" in (bad.error or "")

    plain = await sandbox.execute("x = 1", timeout_s=10)
    assert plain.final is None  # a final belongs to the cell that set it


async def test_show_vars_and_list_vars(sandbox: LocalSandbox) -> None:
    code = (
        "import json\ntext = 'abc'\nitems = [1, 2]\nmapping = {'k': 1}\n__hidden = 1\nSHOW_VARS()"
    )
    result = await sandbox.execute(code, timeout_s=10)
    assert result.output == (
        "text: str, 3 chars\nitems: list, 2 items\nmapping: dict, 1 keys\n"
    )  # printed once: the returned dict is not echoed again
    assert await sandbox.list_vars() == {
        "text": "str, 3 chars",
        "items": "list, 2 items",
        "mapping": "dict, 1 keys",
    }
