"""SIP over UDP: messages, transactions, dialogs, digest auth and registration (RFC 3261)."""
