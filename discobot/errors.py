"""Errors as replies, in one place: what the member did wrong and how to fix it, ephemerally.

:func:`answer_error` turns any error into the reply: a :class:`BadInputError` or a discobase error
(:func:`is_expected`) becomes a short message that says what to fix (the command stopped before
writing anything); anything else is a bug, logged with its traceback and answered with a generic
message. :func:`error_reply` is that choice of words, for the confirmation that shows it in place
of its question.

Everything that serves an interaction hands its errors here. Expected errors are answered where
they happen (:func:`answering_expected`): inside a command's invocation, options included
(:class:`discobot.slash.SlashCommand`), a form's submit (:class:`discobot.views.Form`) and the
confirmation's button (:class:`discobot.views.Confirmation`). What escapes them, a bug, reaches
discord.py's ``on_error`` hooks of the command tree, the views and the forms, which answer it here
too. Those hooks are where discord.py reports a handler that failed (and SimCord with it: its
tests fail, its offline page marks the action failed), so only bugs reach them.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import discord
from discord import app_commands

import discobase
from discobot.permissions import Access, required_access
from discobot.render import code, respond

log = logging.getLogger(__name__)

UNEXPECTED_ERROR_REPLY = (
    "Something went wrong inside the bot; the error was logged for the bot's operator. "
    "Try again, and check the result with /find."
)
MAX_VALIDATION_LINES = 5


class BadInputError(Exception):
    """Input the member can fix: the message says what is wrong and what to write instead."""


def _validation_lines(error: Any) -> str:
    lines = []
    for item in error.errors[:MAX_VALIDATION_LINES]:
        location = ".".join(str(part) for part in item.get("loc", ())) or "record"
        line = f"{code(location, 60)}: {item.get('msg', 'invalid')}"
        if "input" in item and not isinstance(item["input"], dict):
            line += f" (got {code(item['input'], 60)})"
        lines.append(line)
    if len(error.errors) > MAX_VALIDATION_LINES:
        lines.append(f"…and {len(error.errors) - MAX_VALIDATION_LINES} more")
    return "\n".join(lines) or str(error)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def explain_expected(error: BaseException, *, reading: bool = False) -> str | None:
    """The member-facing message for an expected error, or None for a bug.

    ``reading``: the command only reads, so the reply does not promise that nothing changed.
    """
    unchanged = "" if reading else " Nothing was changed."
    if isinstance(error, BadInputError):
        text = str(error)
        return _sentence(text) + ("" if text.endswith((".", "?")) else ".") + unchanged
    if not isinstance(error, discobase.DiscobaseError):
        return None
    if isinstance(error, discobase.ValidationError):
        return (
            f"That does not fit table {code(error.table)}:\n{_validation_lines(error)}\n"
            f"{unchanged.lstrip()}{' ' if unchanged else ''}`/schema` shows the fields and their "
            "types."
        )
    if isinstance(error, discobase.UnknownFieldError):
        known = ", ".join(code(name, 60) for name in error.known) or "none"
        return (
            f"Table {code(error.table)} has no field {code(error.field)}; its fields are {known}."
            f"{unchanged}"
        )
    if isinstance(error, discobase.TableNotFoundError):
        return f"There is no table {code(error.table)}; `/table list` shows the tables."
    if isinstance(error, discobase.TableExistsError):
        return f"A table {code(error.table)} exists already; pick another name or `/drop` it first."
    if isinstance(error, discobase.UniqueViolationError):
        return (
            f"{code(error.field)} must be unique in {code(error.table)}, and {code(error.value)} is "
            f"taken by the record {code(error.key)}.{unchanged}"
        )
    if isinstance(error, discobase.RecordNotFoundError):
        return f"Table {code(error.table)} has no record with key {code(error.key)}."
    if isinstance(error, discobase.ConflictError):
        return (
            f"The record {code(error.key)} in {code(error.table)} was changed by someone else "
            f"meanwhile.{unchanged} Run the command again to see it as it is now."
        )
    if isinstance(error, discobase.RecordTooLargeError):
        return (
            f"That record is too large to store ({error.size:,} bytes; the limit is "
            f"{error.limit:,}). Store less in one record.{unchanged}"
        )
    if isinstance(error, discobase.SchemaError):
        return f"That table definition does not work: {code(str(error), 1500)}"
    log.warning("discobase error answered to a member: %s", error)
    if isinstance(error, discobase.MissingPermissionsError):
        return (
            f"The bot lacks permissions in this server: {', '.join(error.missing)}. Ask a server "
            "admin to grant them to the bot's role."
        )
    if isinstance(error, discobase.DiscordUnavailableError):
        return f"Discord did not answer the bot in time.{unchanged} Try again in a minute."
    if isinstance(error, discobase.TableShardsMissingError):
        return (
            f"Table {code(error.table)} cannot be read: {code(error.detail, 1000)}. Nothing was "
            "changed. A server admin can restore it from a backup (`discobase restore`); "
            "`/check` lists the problem."
        )
    if isinstance(error, discobase.StorageCorruptError):
        return (
            f"Stored data could not be read: {code(str(error), 1500)}. An admin can run `/check`."
        )
    if isinstance(error, discobase.NotConnectedError):
        return "The database is not connected yet; try again in a moment."
    return _sentence(code(str(error), 1500))


def is_expected(error: BaseException) -> bool:
    """Whether ``error`` is the member's to fix (or the database's to report), not a bug."""
    return isinstance(cause(error), BadInputError | discobase.DiscobaseError)


def cause(error: BaseException) -> BaseException:
    """The error a command, its options or a component raised, out of discord.py's wrappers."""
    if isinstance(error, app_commands.CommandInvokeError):
        return error.original
    if isinstance(error, app_commands.TransformerError) and error.__cause__ is not None:
        return error.__cause__
    return error


def _reads_only(interaction: discord.Interaction[Any]) -> bool:
    command = interaction.command
    return isinstance(command, app_commands.Command) and required_access(command) is Access.READ


def _what(interaction: discord.Interaction[Any]) -> str:
    command = interaction.command
    if command is not None:
        return f"command /{command.qualified_name}"
    return f"{interaction.type.name} interaction"


def error_reply(interaction: discord.Interaction[Any], error: BaseException) -> str:
    """The reply to ``error``, raised while serving ``interaction``: what to fix for bad input and
    discobase errors; for anything else (a bug) the generic message, after logging the error
    with its traceback."""
    original = cause(error)
    explanation = explain_expected(original, reading=_reads_only(interaction))
    if explanation is not None:
        return explanation
    log.error("%s failed", _what(interaction), exc_info=original)
    return UNEXPECTED_ERROR_REPLY


async def answer_error(interaction: discord.Interaction[Any], error: BaseException) -> None:
    """Answer ``interaction`` ephemerally with :func:`error_reply`, deferred or not.

    The command tree, the views and the forms route every error here.
    """
    reply = error_reply(interaction, error)
    try:
        await respond(interaction, reply)
    except discord.HTTPException:
        log.warning("could not tell the member that %s failed", _what(interaction))


@asynccontextmanager
async def answering_expected(interaction: discord.Interaction[Any]) -> AsyncIterator[None]:
    """Answer the expected errors raised inside the block; a bug goes on (to discord.py, whose
    ``on_error`` hooks answer it with :func:`answer_error` too)."""
    try:
        yield
    except Exception as error:
        if not is_expected(error):
            raise
        await answer_error(interaction, error)
