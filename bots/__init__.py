"""Platform adapters: each turns platform updates into core messages and replies back into API calls."""
