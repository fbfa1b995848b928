"""Ids are fixed-width lowercase hex (leading zeros kept) and do not repeat."""

from __future__ import annotations

import re

from router.ids import new_id, random_hex


def test_random_hex_is_fixed_width_hex_and_unique() -> None:
    ids = [random_hex(16) for _ in range(20_000)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)  # 1 in 16 starts with a 0
    assert len(set(ids)) == len(ids)


def test_response_ids_keep_openai_shape() -> None:
    ids = {new_id("chatcmpl-") for _ in range(5_000)}
    assert len(ids) == 5_000
    assert all(re.fullmatch(r"chatcmpl-[0-9a-f]{24}", i) for i in ids)
