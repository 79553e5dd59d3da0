"""sipp scenarios (XML) and the harness that runs them, for tests/integration/test_sip_*.py and bench/sip.py."""
