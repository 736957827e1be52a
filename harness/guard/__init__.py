"""The in-process guard: this folder goes on a phase's PYTHONPATH so its sitecustomize loads."""
