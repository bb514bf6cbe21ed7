"""L2 serving: the bundled base model and the local vLLM that serves it with LoRA adapters."""
