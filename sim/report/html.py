"""`dcmarket report DIR`: one self-contained HTML page for a run or a sweep directory.

Everything the page shows is inside the file: the figures as PNG data URIs, the tables as HTML,
a round-by-round view of the standings driven by a few lines of inline JavaScript, the config as
text. No network, no external script or style, no timestamp: the same directory gives the same
bytes. The figures a directory lacks (a run without --plots, a sweep without --plots) are drawn
for the page from its tables.

A run's page: the verdict in words, the headline numbers, the standings after each round (a
slider and buttons step through the rounds), the final allocation and payments, the figures and
the effective config. A sweep's page: what ran, a summary per value of each swept parameter, the
figures, every run's row and the sweep file. Any other dcmarket directory (plan, price,
capacity): its summary, its figures and its CSV tables.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from sim.output import files as outputs

REPORT = "report.html"
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; line-height: 1.45; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.6rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.2rem 0.55rem; text-align: right; }
th { background: #f2f2f2; } td.text, th.text { text-align: left; }
.verdict { padding: 0.6rem 0.9rem; border-radius: 6px; background: #eef6ee; border: 1px solid #9c9; }
.verdict.no { background: #fbeeee; border-color: #d99; }
.verdict p, .verdict ul { margin: 0.2rem 0; }
figure { margin: 1rem 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.85rem; color: #555; }
pre { background: #f7f7f7; padding: 0.8rem; overflow-x: auto; font-size: 0.8rem; }
.stepper { display: flex; gap: 0.6rem; align-items: center; margin: 0.5rem 0; }
.numbers td:first-child { text-align: left; }
"""
# Steps the standings table through the rounds; the data are in the page (#rounds-data).
_STEPPER = """
(function () {
  const data = JSON.parse(document.getElementById('rounds-data').textContent);
  const slider = document.getElementById('round-slider');
  const label = document.getElementById('round-label');
  const body = document.getElementById('standings-body');
  function show(k) {
    const round = data.rounds[k];
    label.textContent = 'Round ' + round.round + ' of ' + data.rounds.length;
    body.innerHTML = '';
    for (const row of round.standings) {
      const tr = document.createElement('tr');
      for (const [value, cls] of [[row.product, 'text'], [row.bidder || '-', 'text'], [row.price.toFixed(2), '']]) {
        const td = document.createElement('td');
        td.textContent = value; if (cls) td.className = cls; tr.appendChild(td);
      }
      body.appendChild(tr);
    }
    slider.value = k;
  }
  slider.max = data.rounds.length - 1;
  slider.addEventListener('input', () => show(Number(slider.value)));
  document.getElementById('round-prev').addEventListener('click', () => show(Math.max(0, Number(slider.value) - 1)));
  document.getElementById('round-next').addEventListener('click',
    () => show(Math.min(data.rounds.length - 1, Number(slider.value) + 1)));
  show(0);
})();
"""


def _script_json(data: Any) -> str:
    """JSON that is safe inside a <script> element: no "</script>" (or "<!--") can close it early,
    whatever a bidder or product is called."""
    return json.dumps(data).replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], text_columns: Sequence[int] = (0,),
           css: str = "") -> str:
    head = "".join(f'<th class="text">{_esc(h)}</th>' if i in text_columns else f"<th>{_esc(h)}</th>"
                   for i, h in enumerate(headers))
    body = []
    for row in rows:
        cells = "".join(f'<td class="text">{_esc(v)}</td>' if i in text_columns else f"<td>{_esc(v)}</td>"
                        for i, v in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _figure(png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{_esc(caption)}">'
            f"<figcaption>{_esc(caption)}</figcaption></figure>")


def _lines(text: str) -> str:
    """Report text as HTML, line for line: a paragraph per line, and the indented lines below one
    (a bidder's bundles, a violation) as a list, one item each."""
    parts: list[str] = []
    items: list[str] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("  "):
            items.append(f"<li>{_esc(line.strip())}</li>")
            continue
        if items:
            parts.append(f"<ul>{''.join(items)}</ul>")
            items = []
        if line:
            parts.append(f"<p>{_esc(line)}</p>")
    return "".join(parts)


def _money(value: Any) -> str:
    return "-" if value is None else f"{float(value):,.2f} $"


def _page(title: str, sections: Sequence[str], script: str = "") -> bytes:
    body = "\n".join(sections)
    tail = f"<script>{script}</script>" if script else ""
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{_esc(title)}</title>"
            f"<style>{_STYLE}</style></head><body>\n<h1>{_esc(title)}</h1>\n{body}\n{tail}</body></html>\n"
            ).encode("utf-8")


def _drawn(draw, name: str) -> bytes:
    from sim.report.figures.plots import figure_bytes

    return figure_bytes({name: draw})[name]


def run_page(run_dir: Path, summary: Mapping[str, Any]) -> bytes:
    from sim.report.figures.run import HOLDINGS, PRICE_PATH, round_figures
    from sim.report.text import equilibrium_text, revenue

    rounds = outputs.read_csv_rows(run_dir / outputs.ROUNDS, integers=("round",), numbers=("standing_price",))
    products = [p["id"] for p in summary["products"]]
    bidders = list(summary["payments"])
    verdict = summary.get("equilibrium", {})
    holds = bool(verdict.get("holds"))
    sections = [f'<div class="verdict{"" if holds else " no"}" id="verdict">{_lines(equilibrium_text(summary))}</div>']
    numbers = [("mechanism", summary["mechanism"]), ("seed", summary["seed"]), ("products", len(products)),
               ("bidders", len(bidders)), ("rounds", summary["rounds"]), ("welfare", _money(summary.get("welfare"))),
               ("best possible welfare", _money(summary.get("efficient_welfare"))),
               ("revenue", _money(revenue(summary["payments"])))]
    sections.append("<h2>Outcome</h2>" + _table(["", "value"], numbers, (0, 1), "numbers"))
    by_round: dict[int, list[dict[str, Any]]] = {}
    for row in rounds:
        by_round.setdefault(int(row["round"]), []).append(
            {"product": row["product"], "bidder": row["standing_bidder"], "price": float(row["standing_price"] or 0)})
    data = {"rounds": [{"round": r, "standings": by_round[r]} for r in sorted(by_round)]}
    sections.append(
        "<h2>Standings round by round</h2><div class=\"stepper\">"
        '<button id="round-prev" type="button">&larr; previous</button>'
        '<input id="round-slider" type="range" min="0" value="0" step="1" aria-label="round">'
        '<button id="round-next" type="button">next &rarr;</button><span id="round-label"></span></div>'
        '<table id="standings"><thead><tr><th class="text">product</th><th class="text">standing bidder</th>'
        '<th>standing price ($)</th></tr></thead><tbody id="standings-body"></tbody></table>'
        f'<script type="application/json" id="rounds-data">{_script_json(data)}</script>')
    allocation = [(p, summary["allocation"].get(p) or "(unsold)", f"{summary['prices'].get(p, 0):,.2f}")
                  for p in products]
    sections.append("<h2>Final allocation</h2>" + _table(["product", "winner", "price ($)"], allocation, (0, 1)))
    payments = [(b, ", ".join(summary["bundles"].get(b, [])) or "-", f"{summary['values'].get(b, 0):,.2f}",
                 f"{summary['payments'][b]:,.2f}", f"{summary['surplus'].get(b, 0):,.2f}") for b in bidders]
    sections.append("<h2>Payments</h2>" + _table(["bidder", "products won", "value ($)", "pays ($)", "surplus ($)"],
                                                  payments, (0, 1)))
    captions = {PRICE_PATH: "Standing price of each product by round ($)",
                HOLDINGS: "Who stands on each product after each round"}
    shown = []
    for name, draw in round_figures(rounds, summary).items():
        png = outputs.read_png(run_dir / name) if (run_dir / name).is_file() else _drawn(draw, name)
        shown.append(_figure(png, captions[name]))
    if (run_dir / outputs.CAPACITY_MAP).is_file():
        shown.append(_figure(outputs.read_png(run_dir / outputs.CAPACITY_MAP), "Firm and flexible capacity per bus (MW)"))
    sections.append("<h2>Figures</h2>" + "".join(shown))
    for folder, title in ((outputs.PLAN_FOLDER, "Flexible-capacity plan after the auction"),
                          (outputs.PRICE_FOLDER, "DLMP coordination after the auction")):
        pictures = sorted((run_dir / folder).glob("*.png")) if (run_dir / folder).is_dir() else []
        if pictures:
            sections.append(f"<h2>{title} ({folder}/)</h2>"
                            + "".join(_figure(outputs.read_png(p), f"{folder}/{p.name}") for p in pictures))
    if (run_dir / outputs.CONFIG).is_file():
        sections.append(f"<h2>Config</h2><pre>{_esc(outputs.read_text(run_dir / outputs.CONFIG))}</pre>")
    return _page(f"dcmarket run: {run_dir.name}", sections, _STEPPER)


def sweep_page(sweep_dir: Path) -> bytes:
    from sim.output.sweep_dir import (
        PLOTS_FOLDER,
        RESULTS,
        SWEEP_FILE,
        read_sweep_copy,
        read_table,
    )
    from sim.report.figures.sweep import default_panels, figure_drawers, file_name
    from sim.report.query import cell, query

    keys = read_sweep_copy(sweep_dir).swept_keys()
    table = read_table(sweep_dir, RESULTS, keys).to_pandas()
    failed = int((table["status"] != "ok").sum())
    sections = [f'<p class="verdict{" no" if failed else ""}" id="verdict">{len(table):,} runs, {failed:,} failed; '
                f"{len(keys)} swept parameter(s): {_esc(', '.join(keys) or 'none')}. {_verdicts(table)}</p>"]
    for key in keys:
        names, rows = query(sweep_dir, group_by=[key])
        sections.append(f"<h2>By {_esc(key)}</h2>" + _table(names, [[cell(v) for v in row] for row in rows], (0,)))
    shown = []
    for key, draw in figure_drawers(table, keys, "Sweep").items():
        path = sweep_dir / PLOTS_FOLDER / file_name(key)
        png = outputs.read_png(path) if path.is_file() else _drawn(draw, path.name)
        what = ", ".join(label for _, label in default_panels(list(table.columns)))
        shown.append(_figure(png, f"{what[0].upper()}{what[1:]} against {key}, over seeds"))
    if shown:
        sections.append("<h2>Figures</h2>" + "".join(shown))
    names, rows = query(sweep_dir, limit=500)
    sections.append(f"<h2>Runs</h2><p>{'The first 500 of ' if len(table) > 500 else ''}{len(table):,} runs.</p>"
                    + _table(names, [[cell(v) for v in row] for row in rows], (0, 1)))
    sections.append(f"<h2>Sweep file</h2><pre>{_esc(outputs.read_text(sweep_dir / SWEEP_FILE))}</pre>")
    return _page(f"dcmarket sweep: {sweep_dir.name}", sections)


def _verdicts(table) -> str:
    """How often the equilibrium verdict held, among the runs that have one (VCG and the queue
    have none)."""
    if "equilibrium_holds" not in table.columns:  # a plan sweep: no auction, no verdict
        return ""
    judged = table[(table["status"] == "ok") & table["equilibrium_holds"].notna()]
    if judged.empty:
        return "No run has an equilibrium verdict."
    held = int(judged["equilibrium_holds"].astype(bool).sum())
    return f"The equilibrium verdict held in {held:,} of the {len(judged):,} runs that have one."


def study_page(study_dir: Path, summary: Mapping[str, Any]) -> bytes:
    """A plan, price or capacity directory: its summary, figures and CSV tables."""
    sections = []
    figures = [_figure(outputs.read_png(p), p.stem.replace("_", " ")) for p in sorted(study_dir.glob("*.png"))]
    if figures:
        sections.append("<h2>Figures</h2>" + "".join(figures))
    for path in sorted(study_dir.glob("*.csv")):
        rows = outputs.read_csv_rows(path, copied=path.name in outputs.INPUT_COPIES)
        if rows:
            shown = rows[:200]
            sections.append(f"<h2>{_esc(path.name)}</h2><p>{len(rows):,} rows{', the first 200' if len(rows) > 200 else ''}"
                            "</p>" + _table(list(rows[0]), [list(r.values()) for r in shown], ()))
    sections.append(f"<h2>summary.json</h2><pre>{_esc(json.dumps(summary, indent=2))}</pre>")
    return _page(f"dcmarket: {study_dir.name}", sections)


def write_report(directory: Path) -> Path:
    """Write ``directory``/report.html for a run, sweep or study directory and return its path."""
    from sim.output.sweep_dir import RESULTS

    if not directory.is_dir():
        raise outputs.OutputError(f"{directory}: no such directory")
    outputs.check_writable(directory)  # report.html goes there; find out before drawing the page
    if (directory / RESULTS).is_file():
        page = sweep_page(directory)
    else:
        summary = outputs.read_summary(directory, required=())
        page = run_page(directory, summary) if "allocation" in summary else study_page(directory, summary)
    outputs.clear_stale(directory / REPORT)  # the temporaries of a report killed while writing
    outputs.write_atomically(directory / REPORT, page)
    return directory / REPORT
