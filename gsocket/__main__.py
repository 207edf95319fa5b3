"""``python -m gsocket``: the gsocket command (chat, echo, netstat)."""

from gsocket.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
