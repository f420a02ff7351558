"""Progress for the long hub commands, drawn with rich.

hub/ reports progress as plain lines through a ``progress(str)`` callback and knows nothing
of terminals; this module renders those lines. On a terminal each line is printed and a
spinner shows the latest one while the command waits (downloads, Cassandra starting). When
stdout is not a terminal (a pipe, a log file, a test capturing it) the spinner draws
nothing and only the lines are printed, as plain text, in order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.markup import escape


@contextlib.contextmanager
def status_lines(title: str, console: Console | None = None) -> Iterator[Callable[[str], None]]:
    """A ``progress`` callback for hub.services / hub.storage.schema, with a spinner.

    The callback may be called from several threads (services start Redis and Cassandra in
    parallel): rich's console serialises the writes.
    """
    con = console or Console(highlight=False, soft_wrap=True)
    with con.status(escape(title)) as status:

        def progress(line: str) -> None:
            con.print(line, markup=False)
            status.update(escape(f"{title}: {line}"))

        yield progress
