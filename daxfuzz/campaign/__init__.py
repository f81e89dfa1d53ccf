"""The campaign as a library: the campaign folder (runs, series, finding queue), the
report, the shared Hypothesis database, and the zoo and mutation benchmarks.  The CLI
(daxfuzz/cli) only parses flags, calls these and prints."""
