import sys

from voice.cli import main

if __name__ == "__main__":  # guarded: spawned worker processes import the main module
    sys.exit(main())
