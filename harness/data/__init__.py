"""Package data: the rehearsal data lives in harness/data/rehearsal/."""
