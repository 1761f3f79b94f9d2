"""tailcast scheduler_hooks package."""
