"""The `models:` section's entries and the rules across them (issue #15).

`entry` reads one entry; `check` what relates entries: names unique, a node model given one
`num_ctx` and `keep_alive` whichever entry sends requests to it, and a name that is another
entry's target standing only for that node model. Names are kept as written; what routes on
them is their `router.modelnames.canonical` form, and so are the comparisons here.
"""

from __future__ import annotations

import re

from router.config.model import ModelConfig
from router.config.validate import Section, kind
from router.modelnames import canonical

# An Ollama model name: [host[:port]/][namespace/]model[:tag] (api-reference.md 1.0).
_MODEL_RE = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9._-]*(?::[0-9]+)?(?:/[A-Za-z0-9][A-Za-z0-9._-]*)*"
    r"(?::[A-Za-z0-9][A-Za-z0-9._-]*)?$"
)
# Go's time.ParseDuration, as Ollama reads a keep_alive string: "30m", "1h30m", "-1m", "0".
_DURATION_RE = re.compile(r"^[-+]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:ns|us|µs|ms|s|m|h))+$")
_THINK = ("low", "medium", "high", "max")


def entry(s: Section) -> ModelConfig:
    name = _model_name(s, "name", s.raw("name"))
    raw_targets = s.raw("targets")
    if raw_targets is None:
        targets: tuple[str, ...] = (name,)
    elif not isinstance(raw_targets, list) or not raw_targets:
        got = "an empty list" if raw_targets == [] else kind(raw_targets)
        raise s.fail("targets", f"must be a non-empty list of node model names, got {got}")
    else:
        targets = tuple(_model_name(s, f"targets[{i}]", t) for i, t in enumerate(raw_targets))
    seen: dict[str, int] = {}
    for i, target in enumerate(targets):
        if canonical(target) in seen:
            raise s.fail(f"targets[{i}]", f"{target!r} is listed twice")
        seen[canonical(target)] = i
    return ModelConfig(
        name=name,
        targets=targets,
        num_ctx=_optional_int(s, "num_ctx", minimum=1, maximum=1 << 24),
        keep_alive=_keep_alive(s),
        min_loaded=s.integer("min_loaded", 0, minimum=0, maximum=100_000),
        truncate=s.boolean("truncate", False),
        num_predict=_optional_int(s, "num_predict", minimum=1, maximum=1 << 24),
        think=_think(s),
        hide_raw=s.boolean("hide_raw", False),
    )


def _model_name(s: Section, key: str, value: object) -> str:
    if value is None:
        raise s.fail(key, "is required")
    if not isinstance(value, str) or not _MODEL_RE.match(value) or len(value) > 255:
        shown = repr(value) if isinstance(value, str) else kind(value)
        raise s.fail(key, f"must be an Ollama model name such as llama3 or llama3:70b, got {shown}")
    if value.lower().startswith("ollama/"):
        raise s.fail(key, f"is given without the ollama/ prefix, got {value!r}")
    return value


def _optional_int(s: Section, key: str, *, minimum: int, maximum: int) -> int | None:
    return None if s.raw(key) is None else s.integer(key, 0, minimum=minimum, maximum=maximum)


def _keep_alive(s: Section) -> str | int | float | None:
    value = s.raw("keep_alive")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise s.fail("keep_alive", f"must be a duration such as 30m, or seconds, got {kind(value)}")
    if isinstance(value, str):
        # Ollama refuses a string without a unit ("300", "-1") with a 400 on every request.
        if value not in ("0", "-0") and not _DURATION_RE.match(value):
            raise s.fail(
                "keep_alive",
                f"must be a duration with a unit (30s, 30m, 2h, -1m) or a number of seconds, "
                f"got {value!r}",
            )
    elif value < 0 and value != -1:
        raise s.fail("keep_alive", f"must be >= 0 seconds, or -1 to keep it loaded, got {value}")
    return value


def _think(s: Section) -> bool | str | None:
    value = s.raw("think")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value in _THINK:
        return value
    shown = repr(value) if isinstance(value, str) else kind(value)
    raise s.fail("think", f"must be true, false or one of {', '.join(_THINK)}, got {shown}")


def check(root: Section, entries: list[ModelConfig]) -> None:
    """Names unique; a node model gets one num_ctx and keep_alive whichever entry sends to it
    (another num_ctx reloads the model, api-reference.md pitfall 13); and a name that is
    another entry's target may only stand for that node model itself."""
    names: dict[str, int] = {}
    owner: dict[str, tuple[int, ModelConfig]] = {}  # target → the first entry listing it
    for i, item in enumerate(entries):
        key = canonical(item.name)
        if key in names:
            raise root.fail(f"models[{i}].name", f"{item.name!r} is also models[{names[key]}].name")
        names[key] = i
        for j, target in enumerate(item.targets):
            first = owner.setdefault(canonical(target), (i, item))
            if (first[1].num_ctx, first[1].keep_alive) != (item.num_ctx, item.keep_alive):
                raise root.fail(
                    f"models[{i}].targets[{j}]",
                    f"{target!r} is also a target of models[{first[0]}] ({first[1].name}) with "
                    f"another num_ctx or keep_alive: a node model gets one of each, or Ollama "
                    f"reloads it between requests",
                )
    for i, item in enumerate(entries):
        other = owner.get(canonical(item.name))
        if (
            other is not None
            and other[0] != i
            and tuple(map(canonical, item.targets)) != (canonical(item.name),)
        ):
            raise root.fail(
                f"models[{i}].name",
                f"{item.name!r} is a target of models[{other[0]}] ({other[1].name}): as a name "
                f"it may only stand for that node model (targets: [{item.name}])",
            )
