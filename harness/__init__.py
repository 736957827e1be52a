"""pgolf: a reproducible submission harness for the parameter-golf challenge."""

__version__ = "0.1.0"
