"""A run's progress in words, from its stored events: what the OpenAI stream shows as
reasoning and the MCP server sends as progress notifications."""

from __future__ import annotations

from dataclasses import dataclass

from rlm_engine.store.records import StoredEvent


@dataclass(slots=True)
class ProgressNotes:
    """What to tell a client about a run, one event at a time."""

    sub_calls: int = 0
    iterations: int = 0

    def note(self, event: StoredEvent) -> str | None:
        """A line for ``event``, or None for an event not worth a line by itself."""
        body = event.body
        root = event.depth == 0
        if event.type == "subcall_finished":
            self.sub_calls += 1
            return None
        if event.type == "run_started" and root:
            return f"Run {event.run_id} started on {body.get('model', '?')}.\n"
        if event.type == "context_loaded" and root:
            return f"Context loaded: {int(body.get('total_chars', 0)):,} characters.\n"
        if event.type == "iteration_started" and root:
            self.iterations = int(body.get("iteration", self.iterations + 1))
            return f"Iteration {self.iterations} started ({self.sub_calls} sub-calls so far).\n"
        if event.type == "iteration_finished" and root:
            return (
                f"Iteration {body.get('iteration', self.iterations)} finished: "
                f"{self.sub_calls} sub-calls so far.\n"
            )
        if event.type == "model_fallback":
            return f"Falling back from {body.get('from_model')} to {body.get('to_model')}.\n"
        if event.type == "run_finished" and root:
            return (
                f"Run finished ({body.get('stop_reason')}) after "
                f"{body.get('iterations', self.iterations)} iterations and "
                f"{self.sub_calls} sub-calls.\n"
            )
        return None
