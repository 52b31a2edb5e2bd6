"""Operator surfaces and process wiring: settings, local Kafka, the CLI."""
