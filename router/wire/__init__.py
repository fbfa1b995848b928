"""Wire formats: OpenAI and Ollama shapes and the translation between them. Pure: no I/O.

`fields` typed getters for a JSON body; `openai` (+ `messages`) OpenAI request parsing and its
error object; `to_ollama` OpenAI request → Ollama payload; `ollama` a streamed Ollama answer
gathered; `to_openai` Ollama answer → OpenAI body or SSE chunks; `sse` the framing.
`translate` re-exports `to_ollama` and `to_openai` under their old name.
Imports only `router.errors` and `router.ids`.
"""
