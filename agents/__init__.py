"""The faust app and one module per stage. Pure decision logic lives in agents.decisions."""
