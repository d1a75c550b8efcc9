"""Tests of bridge/ops/: the operator's HTTP endpoints, the feed, top, tap, validate and the inspector page."""
