"""Test and benchmark tools: a local OpenAI-compatible server with a latency model."""
