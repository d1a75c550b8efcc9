"""GameAnalytics: the Collection API (init, events, remote configs), split by concern."""
