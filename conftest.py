# Puts the repository root on sys.path so tests can import samples/ and bench/.
