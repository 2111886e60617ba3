"""Rewrite the table in README.md and docs/learned.md of the shipped models' held-out figures from plugins/models/provenance.json.

The figures are the ones ``scripts/train_shipped_models.py`` measured and recorded
beside the models it wrote; this script only chooses the views the README shows
(cross-validated overall, feed-sized, long-form and per corpus; each cross-corpus
run overall) and lays them out. PROVENANCE.md beside the models has every view.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Both pages carry the table between the same markers.
PAGES = (ROOT / "README.md", ROOT / "docs" / "learned.md")
PROVENANCE = ROOT / "plugins" / "models" / "provenance.json"
ORDER = ("north_korea", "abductions", "trade")


def shown(view: str) -> bool:
    """Cross-validated views (overall, by size, by corpus) and each cross-corpus run as a whole."""
    if view.startswith("train "):
        return view.endswith("-> test")
    return view.startswith(("5-fold CV",))


def describe_view(view: str, sources: dict, left_out: list[str] = ()) -> str:
    """A view's name for people: which corpora a cross-corpus run trained on and which it was tested on."""
    if view.startswith("train "):
        trained = set(view[len("train "):].split(" -> ", 1)[0].split("+"))
        real = [s for s, c in sources.items() if c["scored"] and c["stories"] and s != "seeds" and s not in left_out]
        inside = [s for s in real if s in trained]
        if len(inside) == 1:
            return f"cross-corpus: trained on {inside[0]} only, tested on the other corpora"
        outside = [s for s in real if s not in trained]
        return f"cross-corpus: trained on the other corpora, tested on {', '.join(outside)}"
    return view.replace("5-fold CV", "grouped 5-fold CV", 1)


def cells(figures: dict) -> str:
    recall = "—" if figures["recall"] is None else f"{figures['recall']:.3f}"
    f1 = "—" if figures["f1"] is None else f"{figures['f1']:.3f}"
    return f"{figures['precision']:.3f} / {recall} / {f1}"


def table(provenance: dict) -> str:
    lines = ["| watchlist | held-out view | stories (on topic) | learned P / R / F1 | query P / R / F1 "
             "| naive floor P / R / F1 |", "|---|---|---:|---|---|---|"]
    for name in ORDER:
        entry = provenance["watchlists"].get(name, {})
        for f in entry.get("figures", []):
            if shown(f["view"]) and f["positives"]:
                lines.append(f"| {name} | {describe_view(f['view'], entry['sources'], entry.get('measured_without', []))} | {f['stories']:,} ({f['positives']}) "
                             f"| **{cells(f['learned'])}** | {cells(f['query'])} | {cells(f['floor'])} |")
    missing = [n for n in ORDER if not provenance["watchlists"].get(n, {}).get("figures")]
    if missing:
        lines += ["", f"**Not measured yet** for the models that ship: {', '.join(missing)} (no held-out figure is "
                      "recorded in provenance.json; `scripts/train_shipped_models.py --measure-only "
                      "--measure-without reuters_topics --jobs 7` records them)."]
    without = sorted({c for e in provenance["watchlists"].values() for c in e.get("measured_without", [])})
    if without:
        lines += ["", f"These figures measure the recipe on every labelled set except {', '.join(without)} "
                      "(left out of the measurement to bound its cost; the shipped models are fitted on all of "
                      "them): `scripts/train_shipped_models.py --measure-only "
                      + " ".join(f"--measure-without {c}" for c in without) + "`."]
    return "\n".join(lines) + "\n"


def main() -> int:
    provenance = json.loads(PROVENANCE.read_text(encoding="utf-8"))
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        new = re.sub(r"(<!-- learned-figures:start -->\n).*?(<!-- learned-figures:end -->)",
                     lambda m: m.group(1) + table(provenance) + m.group(2), text, flags=re.S)
        page.write_text(new, encoding="utf-8")
        name = page.relative_to(ROOT)
        print(f"{name}: learned-model figures updated" if new != text else f"{name}: already current")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
