"""Providers: one module per destination, all behind `base.Provider`, found by name in `registry`."""
