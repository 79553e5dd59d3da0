"""Tests of callflows/media/."""
