"""Print how many processes have the secret read from stdin on their command line.

The secret comes on stdin: Ansible's `environment:` would put it on the remote
shell's own command line (`sh -c 'SECRET=… python3'`), which this check would find.
"""

import glob
import sys

secret = sys.stdin.read().strip().encode()
found = 0
for path in glob.glob("/proc/[0-9]*/cmdline"):
    try:
        with open(path, "rb") as handle:
            found += secret in handle.read()
    except OSError:  # the process ended meanwhile
        continue
print(found)
