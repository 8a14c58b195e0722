"""How long the platform waits on Redis: one policy for every client it opens.

kombu's clients (workers' fetches, leases, promoters, producers: config.queues'
transport options), Celery's result backend (sites/base/settings.py) and every client
of platform_core.broker.clients take their timeouts from here.
"""

# A TCP connect: a broker that has not accepted within this is taken for down (enqueues
# fail fast with one line instead of hanging a web request).
CONNECT_SECONDS = 2
# A reply: every command and script the platform sends answers in milliseconds, so a
# reply later than this means Redis is stuck or gone. Blocking reads (BLMOVE) wait at
# most kombu's brpop_timeout (1 s), below this.
COMMAND_SECONDS = 3
# "Is a Redis there?" checks, and best-effort writes that must not delay their caller.
PROBE_SECONDS = 1
# A Sentinel answers "which is the primary?" from memory: one silent for this long is
# passed over for the next one listed (a powered-off host's sentinel costs each new
# connection this, once per process: the one that answered is asked first after).
SENTINEL_SECONDS = PROBE_SECONDS
# A blocking fetch (BLMOVE) still unanswered brpop_timeout + this after it was sent means
# the broker's host went silent (powered off, cut off: no reset ever comes): the worker
# drops the connection and reconnects. kombu looks this often (health_check_interval), so
# a worker notices within brpop_timeout + 2 x this; redis-py also PINGs a connection idle
# longer than this before using it.
SILENT_BROKER_SECONDS = 1
# A worker that lost the broker asks again this often, and never waits longer than the
# max between two tries (kombu: 2 s, +2 s each time, up to 30 s), so it is back within
# about a second of a failover's end. Each try is one TCP connect (and one line logged).
RECONNECT_STEP_SECONDS = 0.5
RECONNECT_MAX_SECONDS = 1.0
