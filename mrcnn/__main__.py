"""``python -m mrcnn COMMAND ...``: the same as the installed ``mrcnn`` command."""
from mrcnn.cli import main

if __name__ == "__main__":
    main()
