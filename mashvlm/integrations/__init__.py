"""Adapters that plug MASH-VLM into third-party evaluation frameworks (optional extras)."""
