"""Inference: batched, resumable decoding of eval files (`llaso infer`) and single requests (`llaso chat`)."""
