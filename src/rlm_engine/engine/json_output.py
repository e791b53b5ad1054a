"""Typed answers described by a JSON schema rather than a pydantic model.

The engine validates `SUBMIT(...)` with a pydantic model (`RLM(output_schema=...)`): the
model's JSON schema goes into the root prompt, and fields that do not fit are sent back to
the root to fix. Clients such as OpenAI's `response_format` bring a JSON schema instead;
`model_for_json_schema` wraps one in a model with the same behaviour, checked by
`jsonschema` (the ``server`` extra).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar, cast

from pydantic import RootModel, model_validator

from rlm_engine.errors import ConfigurationError


class JsonSchemaAnswer(RootModel[dict[str, Any]]):
    """A SUBMIT answer: a JSON object valid under `json_schema`."""

    json_schema: ClassVar[dict[str, Any]] = {"type": "object"}

    @model_validator(mode="after")
    def _matches(self) -> JsonSchemaAnswer:
        import jsonschema

        try:
            jsonschema.validate(self.root, self.json_schema)
        except jsonschema.ValidationError as exc:
            where = "/".join(str(p) for p in exc.absolute_path) or "the answer"
            raise ValueError(f"{where}: {exc.message}") from None
        return self

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        # What the root is shown: the schema as the client wrote it.
        return cls.json_schema


def model_for_json_schema(schema: Mapping[str, Any]) -> type[JsonSchemaAnswer]:
    """A model whose valid values are the JSON objects ``schema`` accepts.
    `ConfigurationError` for a schema that is not a valid JSON schema of an object."""
    import jsonschema
    from jsonschema.validators import validator_for

    given = cast(dict[str, Any], json.loads(json.dumps(schema)))
    checker: Any = validator_for(given)
    try:
        checker.check_schema(given)
    except jsonschema.SchemaError as exc:
        raise ConfigurationError(
            f"the output schema is not a valid JSON schema: {exc.message}",
            hint="give a JSON schema of an object (its fields are SUBMIT's)",
        ) from None
    if given.get("type", "object") != "object":
        raise ConfigurationError(
            "the output schema must describe a JSON object (SUBMIT(...) gives named fields)",
            hint='use {"type": "object", "properties": {...}}',
        )
    return type("JsonSchemaAnswerOf", (JsonSchemaAnswer,), {"json_schema": given})
