"""The built-in backends, one module each: embedded (llama.cpp, offline), openai (any
OpenAI-compatible server), transformers, and fake (deterministic, for tests and dry runs;
`fake_text.py` is the text it writes)."""
