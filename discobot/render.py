"""Records, schemas and reports as Discord messages: inert text and embeds within the limits.

Stored data is hostile text. Every stored value is shown inside inline code (or a code block for
the table view), with backticks swapped for a look-alike so that the value cannot close the code:
inside code Discord renders no markdown, masked or bare link, mention, channel or command link,
timestamp or custom emoji (see "Message Formatting" in Discord's API reference). Everything is cut
to Discord's limits, and every message is sent with ``allowed_mentions=none``.
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
TABLE_PAGE_LIMIT = 2000
TABLE_CELL_WIDTH = 24
EMBED_COLOUR = discord.Colour.blurple()
BACKTICK_LOOKALIKE = "\u02cb"


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, ending in … when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def as_text(value: Any) -> str:
    """A stored value as one line of text: strings as they are, the rest as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, ensure_ascii=False)


def _inert(value: Any, limit: int) -> str:
    return truncate(as_text(value).replace("\n", " "), limit).replace("`", BACKTICK_LOOKALIKE)


def code(value: Any, limit: int = 100) -> str:
    """A name or value as inline code, where nothing in it is active (no markdown, link, mention,
    timestamp or emoji); backticks inside are swapped so they cannot close it."""
    text = _inert(value, limit)
    return f"`{text}`" if text.strip() else f"`{text}\u200b`"


shown = code
"""A stored value safe to show anywhere in a message: :func:`code`."""


def plural(count: int, noun: str) -> str:
    """``1 record``, ``2 records``, ``1,000 records``."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


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


def record_lines(record: dict[str, Any], *, key_field: str | None = None) -> str:
    """One record's fields as ``**name**: `value``` lines, leaving out ``key_field`` (shown as the
    record's key already)."""
    return "\n".join(
        f"**{discord.utils.escape_markdown(name)}**: {code(value, 200)}"
        for name, value in record.items()
        if name != key_field
    )


def key_label(key: Any, key_field: str | None) -> str:
    """The key of a record as its field (``name: `rex```) or as the generated ``key: `…```."""
    return f"{key_field or 'key'}: {code(key, 200)}"


def _title(table: str, first: int, shown_count: int, total: int) -> str:
    last = first + shown_count
    return truncate(f"{table}: records {first + 1}-{last} of {total:,}", EMBED_TITLE_LIMIT)


def records_page(
    table: str,
    records: Sequence[tuple[Any, dict[str, Any]]],
    *,
    first: int,
    total: int,
    key_field: str | None = None,
    note: str = "",
) -> discord.Embed:
    """An embed of ``(key, fields)`` records numbered from ``first`` (0-based) out of ``total``."""
    embed = discord.Embed(
        title=_title(table, first, len(records), total),
        colour=EMBED_COLOUR,
        description=truncate(note, EMBED_DESCRIPTION_LIMIT) if note else None,
    )
    for key, record in records:
        lines = record_lines(record, key_field=key_field)
        if not add_field(embed, key_label(key, key_field), lines):
            embed.set_footer(text="Some records did not fit; lower the limit or narrow the query.")
            break
    return embed


def paginate(
    table: str,
    records: Sequence[tuple[Any, dict[str, Any]]],
    *,
    total: int | None = None,
    key_field: str | None = None,
    note: str = "",
) -> list[discord.Embed]:
    """Records as cards, :data:`RECORDS_PER_PAGE` a page, each a :func:`records_page`.

    ``total`` is how many records matched (default: as many as given).
    """
    return [
        records_page(
            table,
            records[start : start + RECORDS_PER_PAGE],
            first=start,
            total=len(records) if total is None else total,
            key_field=key_field,
            note=note,
        )
        for start in range(0, len(records), RECORDS_PER_PAGE)
    ]


def _cell(value: Any, width: int) -> str:
    return _inert(value, width).ljust(width)


def table_pages(
    table: str,
    records: Sequence[tuple[Any, dict[str, Any]]],
    *,
    total: int | None = None,
    key_field: str | None = None,
    note: str = "",
) -> list[discord.Embed]:
    """Records as a compact table: aligned columns in a code block, as many rows a page as fit
    in :data:`TABLE_PAGE_LIMIT` characters. Cells are cut to :data:`TABLE_CELL_WIDTH`."""
    if not records:
        return []
    names = [name for name in records[0][1] if name != key_field]
    headers = [key_field or "key", *names]
    rows = [[key, *(fields.get(name) for name in names)] for key, fields in records]
    widths = [
        max(len(header), *(len(_inert(row[column], TABLE_CELL_WIDTH)) for row in rows))
        for column, header in enumerate(headers)
    ]
    widths = [min(width, TABLE_CELL_WIDTH) for width in widths]
    line_limit = TABLE_PAGE_LIMIT // 4

    def line(cells: Sequence[str]) -> str:
        return truncate(" | ".join(cells).rstrip(), line_limit)

    head = line([_cell(header, width) for header, width in zip(headers, widths, strict=True)])
    rule = truncate("-+-".join("-" * width for width in widths), line_limit)
    lines = [
        line([_cell(value, width) for value, width in zip(row, widths, strict=True)])
        for row in rows
    ]
    room = TABLE_PAGE_LIMIT - len("```\n\n\n```") - len(head) - len(rule) - len(note) - 2
    per_page = max(1, room // (max(len(text) for text in lines) + 1))
    matched = len(records) if total is None else total
    pages = []
    for start in range(0, len(lines), per_page):
        body = "\n".join([head, rule, *lines[start : start + per_page]])
        description = (f"{note}\n" if note else "") + f"```\n{body}\n```"
        pages.append(
            discord.Embed(
                title=_title(table, start, len(lines[start : start + per_page]), matched),
                colour=EMBED_COLOUR,
                description=description,
            )
        )
    return pages


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


async def share(interaction: discord.Interaction[Any], embed: discord.Embed) -> None:
    """Post ``embed`` for the whole channel to see, as a follow-up of the member's command.

    The member chose to share it; it is rendered as inertly as every reply, and pings nobody.
    """
    await interaction.followup.send(embed=embed, ephemeral=False, allowed_mentions=NO_MENTIONS)
