"""gsup's benchmark suite (``make bench``): every figure against a target, side by side.

Each figure is a ratio or a median of runs made in the same sitting and
interleaved with its baseline, so a busy machine slows both sides alike.  The
results are printed as a table and written to docs/benchmarks.md with the
commands that reproduce them and the machine they ran on.  A missed target is
reported as MISSED, by how much; the exit status is non-zero only when the
harness could not measure something.
"""
