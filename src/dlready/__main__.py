"""``python -m dlready``."""

from dlready.launch import main

if __name__ == "__main__":
    main()
