"""OANDA v20 (practice / live) through OANDA's official `v20` client library."""
