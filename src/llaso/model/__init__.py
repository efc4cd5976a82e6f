"""The LLaSO model in transformers style: config, processor, model, weight import and conversion."""
