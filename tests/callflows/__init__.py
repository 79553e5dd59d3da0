"""Tests of callflows/ (the telephony core)."""
