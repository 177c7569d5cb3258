"""Transports carry Realtime events between a client and a session; they hold no conversation logic."""
