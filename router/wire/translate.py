"""The OpenAI ⇄ Ollama translation, re-exported from where it lives: `to_ollama` (requests →
payloads) and `to_openai` (answers → bodies and streams); `new_id` is `router.ids.new_id`."""

from router.ids import new_id
from router.wire.to_ollama import chat_payload, completion_payload, ollama_messages
from router.wire.to_openai import (
    FINGERPRINT,
    ChatStream,
    CompletionStream,
    Usage,
    chat_completion,
    finish_reason,
    text_completion,
    tool_calls_out,
    usage_of,
)

__all__ = [
    "FINGERPRINT",
    "ChatStream",
    "CompletionStream",
    "Usage",
    "chat_completion",
    "chat_payload",
    "completion_payload",
    "finish_reason",
    "new_id",
    "ollama_messages",
    "text_completion",
    "tool_calls_out",
    "usage_of",
]
