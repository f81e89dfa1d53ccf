import sys

from daxfuzz.cli import main

sys.exit(main())
