"""The pydantic models bound to the vendor's OpenAPI document, field by field."""

from __future__ import annotations

import json
from enum import IntEnum
from importlib import resources
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ValidationError

from webwidget.chatcaptain import models


def load_schemas() -> dict[str, Any]:
    """The component schemas of the bundled OpenAPI document."""
    text = (
        resources.files("webwidget.chatcaptain")
        .joinpath("contract/widget-api.openapi.json")
        .read_text(encoding="utf-8")
    )
    return json.loads(text)["components"]["schemas"]


SCHEMAS = load_schemas()
PRIMITIVES = {"string": str, "number": float, "boolean": bool, "integer": int}


def ref_name(prop: dict[str, Any]) -> str | None:
    """The schema name a property points at through $ref or a one-element allOf."""
    if "$ref" in prop:
        return prop["$ref"].rsplit("/", 1)[-1]
    if "allOf" in prop and len(prop["allOf"]) == 1:
        return ref_name(prop["allOf"][0])
    return None


def expected_type(prop: dict[str, Any]) -> Any:
    """The Python annotation a schema property should map to (without None)."""
    name = ref_name(prop)
    if name is not None:
        return getattr(models, name)
    kind = prop["type"]
    if "enum" in prop and kind == "string":
        return Literal[tuple(prop["enum"])]
    if kind == "array":
        return list[expected_type(prop["items"])]
    if kind == "object":
        return dict[str, expected_type(prop["additionalProperties"])]
    return PRIMITIVES[kind]


def object_schemas() -> list[str]:
    """Names of the object schemas (all but the enum)."""
    return [name for name, schema in SCHEMAS.items() if schema.get("type") == "object"]


def test_every_schema_has_a_model_and_there_are_31():
    assert len(SCHEMAS) == 31
    assert set(models.CONTRACT_MODELS) == set(SCHEMAS)
    for name in SCHEMAS:
        assert getattr(models, name) is models.CONTRACT_MODELS[name]


@pytest.mark.parametrize("name", object_schemas())
def test_model_matches_schema(name: str):
    schema = SCHEMAS[name]
    model: type[BaseModel] = getattr(models, name)
    fields = {(f.alias or attr): f for attr, f in model.model_fields.items()}
    assert set(fields) == set(schema["properties"]), name
    required = {key for key, f in fields.items() if f.is_required()}
    assert required == set(schema.get("required", [])), name
    for key, prop in schema["properties"].items():
        want = expected_type(prop)
        if key not in schema.get("required", []) or prop.get("nullable"):
            want = want | None
        assert fields[key].annotation == want, f"{name}.{key}: {fields[key].annotation}"


def test_conversation_status_enum_matches_schema():
    schema = SCHEMAS["ConversationStatus"]
    assert issubclass(models.ConversationStatus, IntEnum)
    assert {m.value for m in models.ConversationStatus} == set(schema["enum"])
    assert models.ConversationStatus.OPEN == 0
    assert models.ConversationStatus.CLOSED == 3
    assert models.ConversationStatus(-1) is models.ConversationStatus.UNKNOWN


def test_unknown_fields_are_ignored():
    msg = models.MessageDto.model_validate(
        {
            "id": "m1",
            "sender": "bot",
            "type": "text",
            "status": "sent",
            "created": "2024-01-01T00:00:00Z",
            "outgoing": True,
            "content": {"text": "hi", "brandNewKind": {"x": 1}},
            "tags": [],
            "vendorAddedField": 42,
        }
    )
    assert msg.content.text == "hi"
    assert "vendorAddedField" not in msg.model_dump()


def test_content_with_none_or_several_kinds_validates():
    empty = models.ContentDto.model_validate({})
    assert empty.text is None and empty.file is None
    several = models.ContentDto.model_validate(
        {
            "text": "Pick one",
            "buttons": {"buttons": [{"label": "A", "type": "postback", "value": "a"}]},
            "location": {"latitude": 52, "longitude": 13.4},
        }
    )
    assert several.text == "Pick one"
    assert several.buttons is not None and several.buttons.buttons[0].value == "a"
    assert several.location is not None and several.location.latitude == 52.0


def test_missing_required_field_fails():
    with pytest.raises(ValidationError):
        models.MessagePersonaDto.model_validate({"name": "Captain"})
    with pytest.raises(ValidationError):
        # conversation is nullable but must be present
        models.CreateWidgetConversationResponseDto.model_validate({"newWebToken": "t"})
    assert models.CreateWidgetConversationResponseDto.model_validate(
        {"conversation": None}
    ).conversation is None


def test_email_from_alias_round_trips():
    payload = {
        "subject": "s",
        "body": "b",
        "from": "a@example.com",
        "to": ["b@example.com"],
        "cc": [],
        "bcc": [],
        "attachmentIds": [],
        "references": [],
    }
    email = models.MessageContentEmailDto.model_validate(payload)
    assert email.from_ == "a@example.com"
    assert email.model_dump(by_alias=True)["from"] == "a@example.com"
    by_name_payload = {k: v for k, v in payload.items() if k != "from"}
    by_name = models.MessageContentEmailDto(**by_name_payload, from_="c@example.com")
    assert by_name.from_ == "c@example.com"


def test_numbers_accept_ints_and_enum_parses():
    loc = models.MessageLocationDto.model_validate({"latitude": 1, "longitude": 2})
    assert isinstance(loc.latitude, float)
    team = models.ConversationTeamDto.model_validate({"teamId": "t"})
    assert team.teamId == "t"
