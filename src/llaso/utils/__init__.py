"""Small shared helpers (progress bars) that every layer may use."""
