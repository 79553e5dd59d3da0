"""Tests of callflows/sip/."""
