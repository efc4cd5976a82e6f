"""`llaso serve`: a llaso model behind an OpenAI-compatible Chat Completions API, with dynamic batching.

* `llaso.serve.parsing`: a request's JSON as a LLaSO `Sample` and its decoded audio, checked against the
  limits (`ApiError` naming the field otherwise);
* `llaso.serve.engine`: one batch through the model (greedy, each answer cut to its own budget);
* `llaso.serve.batcher`: the worker thread that owns the model and gathers concurrent requests;
* `llaso.serve.app`: the FastAPI app, its routes and error shapes; `llaso.serve.server`: loading and running.

The protocol is the one `llaso infer --api-url` speaks (`llaso.infer.backends.openai_api`), so each
tests the other. See docs/serving.md.
"""
