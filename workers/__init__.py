"""Delivery side of convo-bridge: take a conversation's pending changes, PATCH, settle."""
