"""Typed getters for the fields of a JSON request body.

Each one returns the value (None when absent or null: "not given") or raises
`BadRequest(param=...)` worded as the OpenAI API words it. They know no request shape, so a
parser of any API (OpenAI today, Anthropic Messages next) reads its fields with them.
"""

from __future__ import annotations

from typing import Any

import orjson

from router.errors import BadRequest


def load_json(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadRequest(
            "We could not parse the JSON body of your request. The API expects a "
            "JSON object in the request body.",
            code="invalid_json",
        ) from None
    if not isinstance(data, dict):
        raise BadRequest(
            f"The request body must be a JSON object, got {type_name(data)}.", code="invalid_json"
        )
    return data


def type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def wrong_type(param: str, expected: str, value: object) -> BadRequest:
    return BadRequest(
        f"Invalid type for '{param}': expected {expected}, but got {type_name(value)} instead.",
        param=param,
        code="invalid_type",
    )


def number(body: dict[str, Any], param: str, lo: float, hi: float) -> float | None:
    value = body.get(param)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise wrong_type(param, "a decimal", value)
    if not lo <= value <= hi:
        raise BadRequest(
            f"Invalid '{param}': expected a value between {lo:g} and {hi:g}, but "
            f"got {value} instead.",
            param=param,
            code="invalid_value",
        )
    return float(value)


def integer(body: dict[str, Any], param: str, lo: int | None = None) -> int | None:
    value = body.get(param)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise wrong_type(param, "an integer", value)
    if lo is not None and value < lo:
        raise BadRequest(
            f"Invalid '{param}': expected a value >= {lo}, but got {value} instead.",
            param=param,
            code="invalid_value",
        )
    return value


def boolean(body: dict[str, Any], param: str) -> bool:
    value = body.get(param)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise wrong_type(param, "a boolean", value)
    return value


def string(body: dict[str, Any], param: str) -> str | None:
    value = body.get(param)
    if value is None:
        return None
    if not isinstance(value, str):
        raise wrong_type(param, "a string", value)
    return value
