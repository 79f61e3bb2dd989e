"""Records, schemas and reports as Discord messages: safe text and embeds within the limits.

Stored data is hostile text: everything shown is markdown-escaped, mention-escaped and truncated to
Discord's embed limits, and every message is sent with ``allowed_mentions=none``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import discord

NO_MENTIONS = discord.AllowedMentions.none()
EMBED_TITLE_LIMIT = 256
EMBED_DESCRIPTION_LIMIT = 4096
EMBED_FIELD_NAME_LIMIT = 256
EMBED_FIELD_VALUE_LIMIT = 1024
EMBED_FIELD_COUNT_LIMIT = 25
EMBED_TOTAL_LIMIT = 6000
CONTENT_LIMIT = 2000
RECORDS_PER_PAGE = 5
EMBED_COLOUR = discord.Colour.blurple()


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, ending in … when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def as_text(value: Any) -> str:
    """A stored value as one line of text: strings as they are, the rest as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, ensure_ascii=False)


def shown(value: Any, limit: int = 100) -> str:
    """A value safe to put in a message: truncated, markdown and mentions escaped."""
    text = truncate(as_text(value).replace("\n", " "), limit)
    return discord.utils.escape_mentions(discord.utils.escape_markdown(text))


def code(value: Any, limit: int = 100) -> str:
    """A name or value as inline code; backticks inside are swapped so they cannot close it."""
    text = truncate(as_text(value).replace("\n", " "), limit).replace("`", "\u02cb")
    return f"`{text}`" if text else "`\u200b`"


def content(text: str) -> str:
    """Message content cut to Discord's 2,000 characters."""
    return truncate(text, CONTENT_LIMIT)


def embed_size(embed: discord.Embed) -> int:
    """Characters that count against the 6,000-character embed limit."""
    return len(embed)


def add_field(embed: discord.Embed, name: str, value: str, *, inline: bool = False) -> bool:
    """Add a field cut to the limits; returns False (adding nothing) when the embed is full."""
    name = truncate(name, EMBED_FIELD_NAME_LIMIT) or "\u200b"
    value = truncate(value, EMBED_FIELD_VALUE_LIMIT) or "\u200b"
    if len(embed.fields) >= EMBED_FIELD_COUNT_LIMIT:
        return False
    if embed_size(embed) + len(name) + len(value) > EMBED_TOTAL_LIMIT - 100:
        return False
    embed.add_field(name=name, value=value, inline=inline)
    return True


def record_lines(record: dict[str, Any]) -> str:
    """One record's fields as ``**name**: value`` lines."""
    return "\n".join(
        f"**{shown(name, 60)}**: {shown(value, 200)}" for name, value in record.items()
    )


def records_page(
    table: str,
    records: Sequence[tuple[Any, dict[str, Any]]],
    *,
    first: int,
    total: int,
    note: str = "",
) -> discord.Embed:
    """An embed of ``(key, fields)`` records numbered from ``first`` (0-based) out of ``total``."""
    last = first + len(records)
    embed = discord.Embed(
        title=truncate(f"{table}: records {first + 1}-{last} of {total}", EMBED_TITLE_LIMIT),
        colour=EMBED_COLOUR,
        description=truncate(note, EMBED_DESCRIPTION_LIMIT) if note else None,
    )
    for key, record in records:
        if not add_field(embed, f"key: {shown(key, 200)}", record_lines(record)):
            embed.set_footer(text="Some records did not fit; lower the limit or narrow the query.")
            break
    return embed


def paginate(
    table: str, records: Sequence[tuple[Any, dict[str, Any]]], *, note: str = ""
) -> list[discord.Embed]:
    """Records as pages of :data:`RECORDS_PER_PAGE`, each a :func:`records_page`."""
    return [
        records_page(
            table,
            records[start : start + RECORDS_PER_PAGE],
            first=start,
            total=len(records),
            note=note,
        )
        for start in range(0, len(records), RECORDS_PER_PAGE)
    ]


def schema_embed(schema: Any) -> discord.Embed:
    """A table's schema: fields with types and defaults, key, indexes, unique fields, count."""
    embed = discord.Embed(
        title=truncate(f"Table {schema.name}", EMBED_TITLE_LIMIT), colour=EMBED_COLOUR
    )
    lines = []
    for field in schema.fields:
        line = f"{code(field.name, 60)} {field.type}{'?' if field.optional else ''}"
        if field.has_default:
            line += f" = {code(field.default, 60)}"
        lines.append(line)
    embed.description = truncate("\n".join(lines), EMBED_DESCRIPTION_LIMIT)
    key = code(schema.primary_key, 60) if schema.primary_key else "generated"
    add_field(embed, "Primary key", key, inline=True)
    add_field(
        embed, "Indexes", ", ".join(code(n, 60) for n in schema.indexes) or "none", inline=True
    )
    add_field(embed, "Unique", ", ".join(code(n, 60) for n in schema.unique) or "none", inline=True)
    add_field(embed, "Records", str(schema.record_count), inline=True)
    return embed


async def respond(
    interaction: discord.Interaction[Any],
    text: str | None = None,
    *,
    embed: discord.Embed | None = None,
    view: discord.ui.View | None = None,
    file: discord.File | None = None,
) -> None:
    """Answer ephemerally, whether or not the interaction was deferred or answered already.

    The first answer after a defer replaces the "thinking…" message; later ones are follow-ups.
    """
    kwargs: dict[str, Any] = {"content": content(text) if text is not None else None}
    if embed is not None:
        kwargs["embed"] = embed
    if view is not None:
        kwargs["view"] = view
    if not interaction.response.is_done():
        if file is not None:
            kwargs["file"] = file
        await interaction.response.send_message(
            ephemeral=True, allowed_mentions=NO_MENTIONS, **kwargs
        )
    elif (
        interaction.response.type is discord.InteractionResponseType.deferred_channel_message
        and not interaction.extras.get("answered")
    ):
        interaction.extras["answered"] = True
        if file is not None:
            kwargs["attachments"] = [file]
        await interaction.edit_original_response(allowed_mentions=NO_MENTIONS, **kwargs)
    else:
        if file is not None:
            kwargs["file"] = file
        await interaction.followup.send(
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
            **{k: v for k, v in kwargs.items() if v is not None},
        )
