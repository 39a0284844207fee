"""Language model backends behind one small interface (`base.LLM`), found by name in
`registry.py`; the backends are in `backends/`, one module each.

Beside them, what they share: `choice.py` (a backend, model and settings, described without
loading anything), `untrusted.py` (model text made safe to store), `json_text.py` (a request
encoded once), `fake_answers.py` (how stages teach the fake backend); what the openai
backend is made of: `openai_format.py` (the wire format, also for batch files and the test
server), `retry.py`, `rate_limit.py`, `concurrency.py`, `handback.py`, `urls.py`; and what
the embedded backend is made of: `model_file.py` and `gguf.py` (model files and their
identity), `prefix_cache.py`, `llama_log.py`."""
