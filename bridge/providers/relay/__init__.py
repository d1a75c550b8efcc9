"""The `relay` provider: an edge daemon forwards its stored events to a studio's relay over CURVE."""
