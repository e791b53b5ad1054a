"""The executor's log markers: what a job log shows, and what the orchestrator reads back."""

from __future__ import annotations

from rlm_engine.jobs import markers


def test_wrap_then_parse_gives_the_body_and_status() -> None:
    log = "runtime banner\n" + markers.wrap("a1", "line 1\nline 2", "success") + "bye\n"
    assert log.splitlines()[1] == "===RLM_EXEC_START artifact_id=a1==="
    assert "===RLM_EXEC_END artifact_id=a1 status=success===" in log
    assert markers.parse(log, "a1") == ("line 1\nline 2\n", "success")


def test_an_empty_output_is_an_empty_body() -> None:
    assert markers.parse(markers.wrap("a1", "", "failed"), "a1") == ("", "failed")


def test_the_last_block_wins_and_other_artifacts_are_ignored() -> None:
    log = (
        markers.wrap("a1", "first try", "failed")
        + markers.wrap("b2", "another artifact", "success")
        + markers.wrap("a1", "second try", "success")
    )
    assert markers.parse(log, "a1") == ("second try\n", "success")
    assert markers.parse(log, "b2") == ("another artifact\n", "success")
    assert markers.parse(log, "c3") is None


def test_a_block_without_its_end_is_not_a_result() -> None:
    log = "===RLM_EXEC_START artifact_id=a1===\nhalf an output\n"
    assert markers.parse(log, "a1") is None


def test_an_unfinished_block_before_a_retry_does_not_swallow_it() -> None:
    log = "===RLM_EXEC_START artifact_id=a1===\ndied here\n" + markers.wrap("a1", "ok", "success")
    assert markers.parse(log, "a1") == ("ok\n", "success")


def test_another_artifacts_end_marker_inside_the_output_does_not_end_the_block() -> None:
    body = "===RLM_EXEC_END artifact_id=zz status=success===\nmore"
    assert markers.parse(markers.wrap("a1", body, "success"), "a1") == (body + "\n", "success")
