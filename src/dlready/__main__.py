"""``python -m dlready``."""

from dlready.cli import main

if __name__ == "__main__":
    main()
