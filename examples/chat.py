"""The chat server of gsocket.chat, run from the examples folder.

    python examples/chat.py --host 127.0.0.1 --port 8888
    python examples/chat.py --redis redis://127.0.0.1:6379/0   # scaled out (pip install 'gsocket[redis]')

Takes the options of ``gsocket-chat`` (``--help``); talk to it with
``nc 127.0.0.1 8888``. Stops cleanly on SIGTERM or SIGINT (exit 0).
"""

from __future__ import annotations

import sys

from gsocket.cli import chat_main

if __name__ == "__main__":
    sys.exit(chat_main(prog="examples/chat.py"))
