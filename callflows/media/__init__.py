"""Media: RTP streams, G.711, RFC 4733 DTMF, the shared 20 ms media clock and the bridge relay."""
