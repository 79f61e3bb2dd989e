"""Queries: conditions, and/or/not, ordering, paging, counting, one record, every record.

Reads are answered from memory (no request to Discord); the writes go out batched.

    python examples/queries.py            # offline, on SimCord
    DISCORD_TOKEN=... DISCOBASE_GUILD=... python examples/queries.py
"""

from __future__ import annotations

import asyncio
from datetime import date

from connect import connected, guild

import discobase

db = discobase.Database(guild("discobase queries"))


@db.table
class Book(discobase.Table):
    title: str
    author: str
    year: int
    pages: int
    tags: list[str] = []
    published: date | None = None

    class Settings:
        primary_key = "title"
        indexes = ["year", "author"]  # equality, in_ and ranges on these use an index


BOOKS = [
    Book(title="Dune", author="Herbert", year=1965, pages=412, tags=["sf"]),
    Book(title="Emma", author="Austen", year=1815, pages=474, tags=["classic"]),
    Book(title="Persuasion", author="Austen", year=1817, pages=249, tags=["classic"]),
    Book(title="Neuromancer", author="Gibson", year=1984, pages=271, tags=["sf", "cyberpunk"]),
    Book(title="Solaris", author="Lem", year=1961, pages=204, tags=["sf"]),
    Book(title="Beloved", author="Morrison", year=1987, pages=324, published=date(1987, 9, 2)),
]


def titles(books: list[Book]) -> list[str]:
    return [book.title for book in books]


async def run_queries() -> None:
    if not await Book.count():  # the first run on a server (on SimCord: every run)
        await Book.insert_many(BOOKS)  # all land, or none

    print("by Austen:", titles(await Book.find(author="Austen", order_by="year")))
    print("after 1960:", titles(await Book.find(Book.year > 1960, order_by="-year")))
    short_or_old = (Book.pages < 250) | (Book.year < 1900)
    print("short or old:", titles(await Book.find(short_or_old, order_by="title")))
    not_lem = await Book.find(Book.tags.contains("sf"), ~(Book.author == "Lem"), order_by="title")
    print("sf, not Lem:", titles(not_lem))
    n_or_p = Book.title.startswith("N") | Book.title.startswith("P")
    print("N or P:", titles(await Book.find(n_or_p, order_by="title")))
    either = await Book.find(Book.author.in_(["Lem", "Gibson"]), order_by="title")
    print("from a list:", titles(either))
    page_1 = await Book.find(order_by="title", limit=2)
    page_2 = await Book.find(order_by="title", limit=2, offset=2)
    print("pages of two:", titles(page_1), titles(page_2))
    print("how many sf:", await Book.count(Book.tags.contains("sf")))
    oldest = await Book.find_one(order_by="year")
    print("oldest:", oldest.title if oldest else None)
    print("no such book:", await Book.find_one(author="Tolkien"))
    try:
        await Book.find(colour="red")
    except discobase.UnknownFieldError as error:
        print("unknown field:", error.field)
    total_pages = 0
    async for book in Book.all(order_by="title"):
        total_pages += book.pages
    print("pages in all:", total_pages)


async def main() -> None:
    async with connected(db):
        await run_queries()


if __name__ == "__main__":
    asyncio.run(main())
