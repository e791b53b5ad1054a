"""A JSON schema as the engine's typed output: valid SUBMIT fields pass, others are refused
with the schema's complaint, and a schema that cannot describe SUBMIT's fields is refused."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from rlm_engine.engine.json_output import model_for_json_schema
from rlm_engine.errors import ConfigurationError

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
}


def test_fields_of_the_schema_validate_and_dump_as_given() -> None:
    model = model_for_json_schema(SCHEMA)
    value = model.model_validate({"city": "Paris", "population": 2100000})
    assert value.model_dump(mode="json") == {"city": "Paris", "population": 2100000}
    assert model.model_validate_json(value.model_dump_json()) == value
    # The root is shown the schema exactly as the client wrote it.
    assert model.model_json_schema() == SCHEMA


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({"city": "Paris", "population": "many"}, "population"),
        ({"city": "Paris"}, "required"),
    ],
)
def test_fields_outside_the_schema_are_refused_with_its_complaint(
    fields: dict[str, object], complaint: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        model_for_json_schema(SCHEMA).model_validate(fields)
    assert complaint in str(refused.value)


@pytest.mark.parametrize("schema", [{"type": "string"}, {"type": "object", "required": 3}])
def test_a_schema_that_cannot_describe_fields_is_refused(schema: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        model_for_json_schema(schema)


def test_each_schema_gets_its_own_model() -> None:
    first = model_for_json_schema(SCHEMA)
    other = model_for_json_schema({"type": "object", "properties": {"n": {"type": "integer"}}})
    assert first.model_json_schema() != other.model_json_schema()
    assert first.model_validate({"city": "x", "population": 1})
