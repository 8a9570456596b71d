//! Helpers for end-to-end tests: free ports, spawning binaries, an RTP receiver.
