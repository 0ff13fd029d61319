"""A real SMTP server on 127.0.0.1 for the email tests (Debian's python3-aiosmtpd, installed by
scripts/deps.sh). Missing, it fails the test at import: never a silent skip."""

import os
import sys
import threading

try:
    from aiosmtpd.controller import Controller
except ImportError:  # Debian's package, when python3 is not Debian's own
    sys.path.append("/usr/lib/python3/dist-packages")
    from aiosmtpd.controller import Controller


class Sink:
    """Accepts every message. messages[i] is (recipients, path of the saved .eml) with a
    directory, else (recipients, content bytes)."""

    def __init__(self, port, directory=None):
        self.directory = directory
        self.messages = []
        self.lock = threading.Lock()
        self.controller = Controller(self, hostname="127.0.0.1", port=port)
        self.controller.start()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            kept = envelope.content
            if self.directory is not None:
                kept = os.path.join(self.directory, f"message-{len(self.messages)}.eml")
                with open(kept, "wb") as f:
                    f.write(envelope.content)
            self.messages.append((list(envelope.rcpt_tos), kept))
        return "250 OK"

    def count(self):
        with self.lock:
            return len(self.messages)

    def stop(self):
        self.controller.stop()
