"""The vocabulary: ops, traces, the world's geometry and storage, and the rules of
each kernel version.  Imports nothing of daxfuzz but errors and textio."""
