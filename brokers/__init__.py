"""Venues behind one port (brokers.port.OrderService); one package per venue."""
