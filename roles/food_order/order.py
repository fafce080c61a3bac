"""The food-order role's Python tools: the order lives here, in the kernel, one per process."""

from __future__ import annotations

import csv
from pathlib import Path

MENU = {
    row["item"]: float(row["price"])
    for row in csv.DictReader((Path(__file__).with_name("menu.csv")).open())
}
order: list[dict[str, object]] = []


def add_item(item: str, quantity: int = 1) -> list[dict[str, object]]:
    """Add ``quantity`` of ``item`` and return the order, with a total line, to show."""
    if item not in MENU:
        raise ValueError(f"{item!r} is not on the menu; the menu has: {', '.join(MENU)}")
    order.append({"item": item, "quantity": quantity, "price": MENU[item] * quantity})
    total = sum(float(str(line["price"])) for line in order)
    return [*order, {"item": "total", "quantity": "", "price": round(total, 2)}]
