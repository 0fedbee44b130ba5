"""``python -m mashvlm``: the command line, as launchers run it (``accelerate launch -m mashvlm train ...``)."""

import sys

from mashvlm.cli import main

if __name__ == "__main__":
    sys.exit(main())
