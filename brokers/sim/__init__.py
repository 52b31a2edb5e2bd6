"""The local exchange simulator: a deterministic venue core with in-process and wire front doors."""
