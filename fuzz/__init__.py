"""The fuzz engines: each only produces op sequences and hands them to the runner.

    hypothesis_machine   Hypothesis rule-based state machine (Bundles of live things)
    atheris_harness      libFuzzer/atheris over the total byte codec
    random_engine        plain random byte strings through the codec: the baseline
"""
