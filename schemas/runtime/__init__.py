"""Process plumbing every entry point shares: logging set-up, console output, and the
settings builder (defaults < file < env < flags). Not record contracts; no torch."""
