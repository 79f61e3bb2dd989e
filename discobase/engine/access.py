"""Who may reach a storage channel: the rule its permission overwrites must keep.

discobase makes every storage channel hidden: ``@everyone`` is denied View Channel, the bot's
own user is allowed what storage needs, and an optional admin role may read but not write
(see :mod:`discobase.transport`). Someone with Manage Roles can change that later. What each
overwrite allows is read when the database opens and by ``check()``; this module says what is
wrong with it, in Discord's permission names. Reading is exposure too: whoever may view a
storage channel reads every record of an unencrypted table, so only the bot (its member and
its own managed role) and the admin role may be granted View Channel.
"""

from __future__ import annotations

from .storage import StoredChannel

__all__ = ("NEEDED", "NEEDED_FOR_THREADS", "WRITE", "exposure", "missing_own")

#: What the bot's own user needs in a storage channel.
NEEDED = (
    "view_channel",
    "send_messages",
    "read_message_history",
    "attach_files",
    "manage_messages",
)
#: What it needs besides in the channel of a table whose shards include private threads of it.
NEEDED_FOR_THREADS = ("create_private_threads", "send_messages_in_threads", "manage_threads")
#: Permissions that let their holder add, remove or change what a channel holds.
WRITE = frozenset(
    {
        "send_messages",
        "send_messages_in_threads",
        "create_public_threads",
        "create_private_threads",
        "manage_messages",
        "manage_threads",
        "manage_channels",
        "manage_webhooks",
        "manage_roles",
    }
)


def missing_own(channel: StoredChannel, *, threads: bool = False) -> list[str]:
    """What the bot's own user needs in ``channel`` (with ``threads``: one that holds a
    table's thread shards) and does not have (none when the storage does not say)."""
    if channel.own_permissions is None:
        return []
    needed = (*NEEDED, *NEEDED_FOR_THREADS) if threads else NEEDED
    return [name for name in needed if name not in channel.own_permissions]


def exposure(channel: StoredChannel, admin_role: int | None = None) -> list[str]:
    """How ``channel``'s overwrites let someone other than the bot read or change it: one
    sentence each (none when the storage does not say). ``admin_role`` is the one role that
    may read it (not write)."""
    if channel.overwrites is None:
        return []
    problems = []
    everyone = next((o for o in channel.overwrites if o.target == "everyone"), None)
    if everyone is None or "view_channel" not in everyone.deny:
        problems.append("@everyone is not denied view_channel: every member can read it")
    for overwrite in channel.overwrites:
        if overwrite.target == "self":
            continue
        granted = sorted(overwrite.allow & WRITE)
        if granted:
            problems.append(f"{overwrite.describe()} is allowed {', '.join(granted)}")
        elif overwrite.target == "everyone" or "view_channel" not in overwrite.allow:
            continue
        elif overwrite.target != "role" or overwrite.target_id != admin_role:
            problems.append(f"{overwrite.describe()} may view it: it can read every record")
        elif "send_messages" not in overwrite.deny:
            problems.append(f"{overwrite.describe()} may view it and is not denied send_messages")
    return problems
