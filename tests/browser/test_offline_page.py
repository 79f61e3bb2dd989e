"""The offline page in a real browser: a newcomer's first session, command after command.

``python bot.py`` runs as the README says; headless Chromium opens the address it prints and
uses the page like a person: types ``/``, picks commands, fills options, reads the replies,
presses buttons, downloads an export, and switches the acting member. Assertions are on what
the page shows.
"""

from __future__ import annotations

import csv
import io

from tests.browser.offline_page import OfflinePage

PETS = [
    ("rex", 4, "2019-04-01", "true", 31.5),
    ("tweety", 2, "2021-06-12", "false", 0.03),
    ("nemo", 0, "2023-01-20", "false", 0.1),
    ("kaa", 0, "2015-09-09", "false", 12.0),
    ("lassie", 4, "2018-02-14", "true", 25.0),
    ("polly", 2, "2020-11-30", "false", 0.4),
]


async def test_a_first_session_runs_every_command_and_shows_its_answers(
    offline_page: OfflinePage,
) -> None:
    page = offline_page

    await page.compose(
        "table create",
        name="pets",
        fields="name:str, legs:int=4, born:date?, vip:bool=false, weight:float?",
        primary_key="name",
        indexes="legs",
    )
    await page.screenshot("tutorial-0-command", tutorial=True)
    created = await page.send()
    assert "Created table pets." in created.text
    assert "born date? = null" in created.text
    await page.screenshot("tutorial-1-create", tutorial=True)

    form = await page.slash("insert", table="pets")
    assert form.text == ""  # a small table opens a form
    await page.screenshot("tutorial-2-form", tutorial=True)
    name, legs, born, vip, weight = PETS[0]
    inserted = await page.submit_form(name, str(legs), born, vip, str(weight))
    assert "Inserted into pets with key rex" in inserted.text
    for name, legs, born, vip, weight in PETS[1:]:
        data = f'{{"name": "{name}", "legs": {legs}, "born": "{born}", "vip": {vip}, "weight": {weight}}}'
        inserted = await page.slash("insert", table="pets", data=data)
        assert f"Inserted into pets with key {name}" in inserted.text

    refused = await page.slash("insert", table="pets", data='{"name": "spot", "legs": "many"}')
    assert "does not fit table pets" in refused.text
    assert "legs" in refused.text
    await page.screenshot("insert-refused")
    counted = await page.slash("count", table="pets")
    assert "pets has 6 records" in counted.text

    found = await page.slash("find", table="pets", query="legs>=2", sort="-legs")
    assert found.text.index("rex") < found.text.index("tweety")
    assert "nemo" not in found.text and "kaa" not in found.text
    await page.screenshot("tutorial-3-find", tutorial=True)
    first_page = await page.slash("find", table="pets", sort="name")
    assert [n for n in ["kaa", "lassie", "nemo", "polly", "rex"] if n in first_page.text] == [
        "kaa",
        "lassie",
        "nemo",
        "polly",
        "rex",
    ]
    assert "tweety" not in first_page.text
    second_page = await page.click(first_page, "Next")
    assert "tweety" in second_page.text and "kaa" not in second_page.text
    limited = await page.slash("find", table="pets", query="vip=true", limit=1)
    assert ("rex" in limited.text) != ("lassie" in limited.text)

    updated = await page.slash("update", table="pets", key="nemo", changes='{"legs": 8}')
    assert "Updated nemo in pets" in updated.text
    refused_update = await page.slash("update", table="pets", key="nemo", changes='{"legs": "x"}')
    assert "legs" in refused_update.text and "Updated" not in refused_update.text

    asked = await page.slash("delete", table="pets", key="kaa")
    assert "Delete the record with key kaa from pets?" in asked.text
    await page.screenshot("delete-asks")
    deleted = await page.click(asked, "Delete")
    assert "Deleted kaa from pets." in deleted.text
    counted = await page.slash("count", table="pets", query="legs>=4")
    assert "pets has 3 records" in counted.text

    exported = await page.slash("export", table="pets", format="csv")
    assert "pets.csv" in exported.text
    download = await page.download(exported, "pets.csv")
    assert download.suggested_filename == "pets.csv"
    rows = list(csv.DictReader(io.StringIO((await download.path()).read_text())))
    assert {row["name"]: row["legs"] for row in rows} == {
        "rex": "4",
        "tweety": "2",
        "nemo": "8",
        "lassie": "4",
        "polly": "2",
    }
    assert {row["name"]: row["born"] for row in rows}["polly"] == "2020-11-30"

    schema = await page.slash("schema", table="pets")
    assert "Table pets" in schema.text
    assert "Records 5" in schema.text
    checked = await page.slash("check")
    assert "No problems found" in checked.text

    asked_drop = await page.slash("drop", table="pets")
    assert "Drop table pets and its 5" in asked_drop.text
    dropped = await page.click(asked_drop, "Drop pets")
    assert "Dropped table pets" in dropped.text
    listed = await page.slash("table list")
    assert "There are no tables yet" in listed.text
    await page.screenshot("session-end")


async def test_a_reader_may_only_read_and_a_plain_member_may_not_read(
    offline_page: OfflinePage,
) -> None:
    page = offline_page
    await page.slash("table create", name="notes", fields="text:str")
    await page.slash("insert", table="notes", data='{"text": "hello"}')

    await page.view_as("rita")
    found = await page.slash("find", table="notes")
    assert "hello" in found.text
    refused = await page.slash("insert", table="notes", data='{"text": "mine"}')
    assert "Changing the database needs" in refused.text
    await page.screenshot("tutorial-4-roles", tutorial=True)

    await page.view_as("bob")
    refused_read = await page.slash("find", table="notes")
    assert "Reading the database needs" in refused_read.text
    assert "hello" not in refused_read.text
    refused_drop = await page.slash("drop", table="notes")
    assert "Changing the database needs" in refused_drop.text
    await page.screenshot("member-refused")

    await page.view_as("ada")
    counted = await page.slash("count", table="notes")
    assert "notes has 1 record" in counted.text
