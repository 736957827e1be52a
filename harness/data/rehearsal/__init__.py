"""The rehearsal data (see README.md and manifest.json here)."""
