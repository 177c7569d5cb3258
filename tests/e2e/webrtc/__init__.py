"""WebRTC end-to-end plumbing: a network namespace per test run, and the programs run inside it."""
