#!/usr/bin/env python3
"""An SFTP subsystem for the test sshd that fails on cue: it relays the session to OpenSSH's
sftp-server and, the first time the client sends a request of the given SFTP packet type,
kills the session's sshd process, so the connection drops as in a crash, without an answer.

    Subsystem sftp /path/sftp_cut.py TYPE MARKER [MIN_OFFSET]

TYPE is the SFTP request type number (5 READ, 12 READDIR, ...). MARKER is a file created when
the cut happens; while it exists, later sessions are relayed untouched, so a client that
reconnects finishes its work; MARKER "-" cuts every session (a server that always fails).
MIN_OFFSET, for READ and WRITE, cuts only a request at that file offset or beyond (so a cut
meets a large object being transferred, not a small file read whole). Tests use it to reach
the error paths of a session that dies in the middle of an operation, deterministically."""
import os
import signal
import subprocess
import sys
import threading

SFTP_SERVER = "/usr/lib/openssh/sftp-server"


def read_exact(f, n):
    buf = b""
    while len(buf) < n:
        part = f.read(n - len(buf))
        if not part:
            return None
        buf += part
    return buf


def offset_of(body):
    """The file offset of a READ (5) or WRITE (6) request: after the type, the id and the
    handle string; 0 for any other request."""
    if body[0] not in (5, 6) or len(body) < 9:
        return 0
    hlen = int.from_bytes(body[5:9], "big")
    return int.from_bytes(body[9 + hlen:17 + hlen], "big")


def main():
    cut_type, marker = int(sys.argv[1]), sys.argv[2]
    min_offset = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    child = subprocess.Popen([SFTP_SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer

    def replies():
        while True:
            data = child.stdout.read1(65536)
            if not data:
                os._exit(0)
            stdout.write(data)
            stdout.flush()

    threading.Thread(target=replies, daemon=True).start()
    armed = marker == "-" or not os.path.exists(marker)
    while True:
        head = read_exact(stdin, 4)
        if head is None:
            break
        body = read_exact(stdin, int.from_bytes(head, "big"))
        if body is None:
            break
        if armed and body and body[0] == cut_type and offset_of(body) >= min_offset:
            if marker != "-":
                open(marker, "w").close()
            child.kill()
            # The session's sshd process holds the connection: killing it drops the TCP
            # connection, as a crash or a network failure would.
            os.kill(os.getppid(), signal.SIGKILL)
            os._exit(1)
        child.stdin.write(head + body)
        child.stdin.flush()
    child.stdin.close()
    child.wait()


if __name__ == "__main__":
    main()
