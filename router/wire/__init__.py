"""Wire formats: OpenAI and Ollama shapes and the translation between them. Pure: no I/O."""
