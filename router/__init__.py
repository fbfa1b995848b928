"""Jarvis Router: one OpenAI-compatible endpoint in front of a fleet of Ollama nodes."""

__version__ = "0.1.0"
