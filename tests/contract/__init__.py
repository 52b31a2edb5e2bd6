"""The OrderService contract suite, shared by every venue's front door."""
