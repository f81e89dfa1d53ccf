"""The differential core: step the oracle and a target, compare them after every op
(runner), decide what is already known (known), reduce a divergence (reduce), emit a
trace and a pytest file (emit)."""
