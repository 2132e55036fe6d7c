"""The README's screenshots of the web atlas: the genealogy with one card's lineage lit, and a card.

    .venv/bin/python benchmarks/screenshots.py [--out docs]

Chinese text needs a CJK font on the machine (Debian: fonts-wqy-microhei or fonts-noto-cjk).
"""

import argparse
from pathlib import Path

from _atlas import chromium, served_atlas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with served_atlas() as url, chromium() as browser:
        page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
        page.goto(url + "#/graph")
        page.wait_for_selector("#cy[data-node-count]")
        page.evaluate("() => { window.atlas.cy.getElementById('transformer').emit('tap'); }")
        page.wait_for_timeout(400)
        page.screenshot(path=out / "atlas-genealogy.png")

        page.goto(url + "#/card/resnet")
        page.wait_for_selector(".card-page .katex")
        bottom = page.evaluate("document.querySelector('.section-claims').getBoundingClientRect().bottom")
        page.screenshot(path=out / "atlas-card.png", full_page=True,
                        clip={"x": 0, "y": 0, "width": 1280, "height": int(bottom) + 16})
    for name in ("atlas-genealogy.png", "atlas-card.png"):
        print(out / name, f"{(out / name).stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
