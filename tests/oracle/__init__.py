"""The oracle suite: the daemon driven from outside by misbehaving clients, peers, providers and disks, with
an oracle that knows what must hold (every acknowledged event stored once and delivered, no traceback,
bounded memory, a well-behaved client still answered fast). `python -m tests.oracle [--long]`."""
