"""Notification: owner verification calls, channels, trunk lines, campaigns."""
