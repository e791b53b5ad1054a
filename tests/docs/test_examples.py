import runpy
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parents[2] / "docs" / "examples"


def test_typed_fanout_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(EXAMPLES / "typed_fanout.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "{'complaints_about_screen': 2, 'most_praised': 'battery'}" in out
    assert "submitted 3 iterations, 4 sub-calls" in out
