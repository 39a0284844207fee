"""Test and benchmark helpers: a local OpenAI-compatible server answering with FakeLLM."""
