"""`RunSpec.artifacts`: stored only when set, and what sandboxes it gives a run."""

from __future__ import annotations

from pathlib import Path

from rlm_engine.jobs.artifact_sandbox import ArtifactSandboxFactory
from rlm_engine.service.sandboxes import SandboxPools
from rlm_engine.service.spec import RunSpec


def test_artifacts_is_stored_only_when_set(tmp_path: Path) -> None:
    plain = RunSpec(model="openai/m")
    assert "artifacts" not in plain.to_json()
    assert RunSpec.from_json(plain.to_json()) == plain
    lake = RunSpec(model="openai/m", artifacts=str(tmp_path / "lake"))
    assert lake.to_json()["artifacts"] == str(tmp_path / "lake")
    assert RunSpec.from_json(lake.to_json()) == lake


def test_a_run_with_artifacts_gets_the_artifact_factory_but_a_replay_does_not(
    tmp_path: Path,
) -> None:
    spec = RunSpec(model="openai/m", artifacts=str(tmp_path / "lake"), isolation="none")
    pools = SandboxPools(0)
    factory = pools.factory_for(spec, run_id="r1", session="s1")
    assert isinstance(factory, ArtifactSandboxFactory)
    assert (factory.run_id, factory.session_id, factory.isolation) == ("r1", "s1", "none")
    assert factory.registry.files_root == tmp_path / "lake" / "artifacts"
    outside = pools.factory_for(spec, run_id="r2")
    assert isinstance(outside, ArtifactSandboxFactory) and outside.session_id == "r2"
    # An offline replay (no run id) runs its cells in a sandbox of its own.
    assert pools.factory_for(spec) is None
    assert pools.factory_for(RunSpec(model="openai/m"), run_id="r3") is None
