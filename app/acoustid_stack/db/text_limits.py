"""How many characters of a request-derived string are stored, in Redis and PostgreSQL.

Most of these strings end up in a unique btree index, and PostgreSQL refuses an index entry
larger than 2704 bytes: one over-long value fails the statement that carries it, and with it
every row batched alongside, again at each retry. In Redis a field or key built from them
would be as large as a request allows. So each string is bounded at the edge, at a length no
honest client reaches. Limits count characters, not bytes: slicing a `str` never splits a
UTF-8 sequence, and at 4 bytes a character the widest key made of them (stats_user_agents:
date, application, 4 x 200 + 4 x 45 bytes) stays far below the index limit.

A string that merely labels something (a user agent, a version, a file format) is cut to its
limit; one that identifies something (a foreign id) is refused instead, as a cut id would name
another item.
"""

from __future__ import annotations

from typing import Final

#: `User-Agent` of a lookup, counted in `stats_user_agents.user_agent` (upstream: varchar,
#: unbounded). Browsers send about 150 characters, music taggers far fewer.
USER_AGENT: Final = 200
#: the client address, counted in `stats_user_agents.ip` and part of rate-limit keys. The
#: longest textual IP address (IPv6 with an embedded IPv4) has 45 characters.
IP: Final = 45
#: `clientversion` of a submission or an anonymous account (`source.version`, unique).
CLIENT_VERSION: Final = 100
#: `fileformat` of a submission (`format.name`, unique).
FILE_FORMAT: Final = 100
#: `foreignid` of a submission, `vendor:id` as a whole (`foreignid_vendor.name` and
#: `foreignid.name`, both unique); a longer one is refused with error 10.
FOREIGN_ID: Final = 255
