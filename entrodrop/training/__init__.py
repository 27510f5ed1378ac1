"""Fine-tuning with EntroDrop through the Hugging Face Trainer (placeholder docstring)."""
