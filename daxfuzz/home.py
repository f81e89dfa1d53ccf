"""Where daxfuzz's default folders are: the project, not the working directory.

    DAXFUZZ_HOME    if set: the folder holding corpus/ (the scenario traces) and where
                    findings/ goes by default
    otherwise       the checkout this daxfuzz was imported from (it has corpus/), else
                    the working directory (an installed copy without the corpus)

So `daxfuzz fuzz` run from another directory still knows the divergences the scenario
corpus documents, instead of reporting them as new; it says which corpus it uses.
The engines' working state lives in folders git ignores: corpus/atheris/ (the
libFuzzer corpus) and corpus/hypothesis-db/ (the example database).
"""

from __future__ import annotations

import os


def checkout() -> str:
    """The folder holding the daxfuzz package: the checkout, for an editable install."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def home() -> str:
    """The daxfuzz home folder (see the module docstring)."""
    env = os.environ.get("DAXFUZZ_HOME")
    if env:
        return os.path.abspath(env)
    root = checkout()
    if os.path.isdir(os.path.join(root, "corpus")):
        return root
    return os.getcwd()


def default(*parts: str) -> str:
    """A default path under the home folder, relative when the working directory is the
    home (so messages stay short), absolute otherwise."""
    h = home()
    if os.path.abspath(os.getcwd()) == h:
        return os.path.join(*parts)
    return os.path.join(h, *parts)


def outside_note(scenarios: str) -> str | None:
    """A warning when the working directory is not the home folder: which scenario
    corpus is used (or that there is none, so documented divergences count as new)."""
    h = home()
    if os.path.abspath(os.getcwd()) == h:
        return None
    if not os.path.isdir(scenarios):
        return (f"no scenario corpus at {scenarios}: divergences the corpus documents will "
                "be reported as new (set DAXFUZZ_HOME to a daxfuzz checkout, or pass "
                "--scenarios DIR or --scenarios none)")
    src = "DAXFUZZ_HOME" if os.environ.get("DAXFUZZ_HOME") else "the daxfuzz checkout"
    return (f"working outside {h}: using the scenario corpus {scenarios} ({src}; "
            "--scenarios DIR or DAXFUZZ_HOME to change)")
