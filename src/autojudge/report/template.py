"""report.html as one Jinja2 template (autoescaped: every suite text, model name and
rationale is escaped; only the base64 image data URIs that the report builds itself go
into attributes unescaped-by-need, and they are escaped anyway). Inline CSS, no script,
no external URL: the file opens offline and can be mailed around.
"""
from __future__ import annotations

CSS = """
:root { --fg:#1d2430; --muted:#5b6575; --line:#dde2ea; --bg:#fff; --accent:#1f5fbf;
        --warn:#9a3b00; --warnbg:#fff4e5; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--fg); background: var(--bg); margin: 0; }
header { padding: 20px 28px 8px; border-bottom: 1px solid var(--line); }
header h1 { margin: 0 0 4px; font-size: 22px; }
.meta { color: var(--muted); margin: 2px 0; }
nav { position: sticky; top: 0; background: #f7f9fc; border-bottom: 1px solid var(--line);
      padding: 6px 28px; z-index: 2; }
nav a { margin-right: 14px; color: var(--accent); text-decoration: none; }
main { padding: 0 28px 40px; max-width: 1400px; }
section { margin-top: 26px; }
h2 { font-size: 18px; border-bottom: 2px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
table { border-collapse: collapse; margin: 8px 0; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid var(--line); padding: 3px 9px; text-align: right;
         white-space: nowrap; }
th { background: #f3f5f9; font-weight: 600; }
td.l, th.l { text-align: left; }
tr.unrated td { color: var(--muted); }
.warn { background: var(--warnbg); color: var(--warn); padding: 6px 10px;
        border-left: 3px solid var(--warn); margin: 6px 0; }
.note { color: var(--muted); font-size: 12px; margin: 2px 0; }
img.chart { max-width: 100%; height: auto; display: block; margin: 6px 0; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
.prompt { border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px;
          margin: 12px 0; }
.prompt .text { margin: 2px 0 4px; white-space: pre-wrap; overflow-wrap: anywhere; }
.tags span { display: inline-block; background: #eef2f8; border-radius: 3px;
             padding: 0 5px; margin: 0 4px 2px 0; font-size: 12px; color: var(--muted); }
.grid { display: flex; flex-wrap: wrap; gap: 10px; margin-top: 6px; }
figure.cell { margin: 0; width: {{ thumb }}px; }
figure.cell img { width: {{ thumb }}px; height: auto; border: 1px solid var(--line);
                  display: block; background: #fafafa; }
figure.cell .missing { width: {{ thumb }}px; height: {{ thumb }}px; display: flex;
  align-items: center; justify-content: center; border: 1px dashed var(--warn);
  color: var(--warn); font-size: 12px; text-align: center; padding: 6px; }
figcaption { font-size: 12px; overflow-wrap: anywhere; }
figcaption b { display: block; }
figcaption span { display: block; color: var(--muted); }
"""

TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="autojudge">
<title>autojudge report: {{ run.name }}</title>
<style>{{ css }}</style>
</head>
<body>
<header id="summary">
  <h1>autojudge: {{ run.name }}</h1>
  <p class="meta">suite <b>{{ run.suite }}</b> &middot; {{ run.n_prompts }} prompts &middot;
    seeds {{ run.seeds|join(", ") }} &middot; {{ run.n_battles }} battles
    ({{ run.n_skipped }} skipped) &middot; {{ run.models|length }} models &middot;
    judges {{ run.judges|join(", ") }}</p>
  <p class="meta">models: {{ run.models|join(", ") }}</p>
  <p class="meta">{{ cache_line }}</p>
  {% if objective %}<p class="meta">sweep objective ({{ objective.objective }} of
    {{ objective.target }} vs {{ objective.reference }}, judge {{ objective.judge }}):
    <b>{{ objective.text }}</b></p>{% endif %}
  {% for note in run.notes or [] %}<p class="note">note: {{ note }}</p>{% endfor %}
</header>
<nav>
  <a href="#leaderboard">Leaderboard</a><a href="#tags">Per tag</a>
  <a href="#winrate">Win rates</a><a href="#tradeoffs">Quality vs latency / cost</a>
  <a href="#agreement">Judge agreement</a>{% if style %}<a href="#style">Style control</a>{% endif %}<a href="#prompts">Prompts</a>
</nav>
<main>
<section id="leaderboard">
  <h2>Leaderboard</h2>
  <p class="note">Bradley-Terry ratings on the Elo scale with {{ confidence_pct }} CIs
    (prompt-clustered bootstrap). Rank is CI-aware. A side the data did not bound is drawn
    as an arrow to the edge and shown as &ge; / &le;; unrated models are never ranked.</p>
  {% for b in boards %}
  <article class="board" data-judge="{{ b.judge }}">
    <h3>{{ b.title }}</h3>
    {% if not b.connected %}<p class="warn">Not connected: {{ b.n_components }} groups of
      models were never linked by battles; ratings and ranks compare only within a group
      (g1, g2, ...).</p>{% endif %}
    {% if b.definition %}<p class="note">{{ b.definition }}</p>{% endif %}
    <img class="chart" alt="ratings with CIs, judge {{ b.judge }}" src="{{ b.chart }}">
    <table>
      <tr><th>rank</th><th class="l">model</th><th>rating</th><th>{{ confidence_pct }} CI</th>
        <th>battles</th><th>W/L/T</th><th>win rate</th><th>latency p50</th>
        <th>latency p95</th><th>$/image</th><th>failed</th></tr>
      {% for r in b.rows %}
      <tr class="{{ 'unrated' if r.rating is none else 'rated' }}">
        <td>{{ r.rank if r.rank is not none else "-" }}</td>
        <td class="l">{{ r.model }}{% if r.group %} [{{ r.group }}]{% endif %}{% if r.provisional %} ~{% endif %}</td>
        <td>{% if r.rating is none %}unrated{% else %}{{ "%.0f"|format(r.rating) }}{% if r.separated %}*{% endif %}{% endif %}</td>
        <td>{{ r.ci_text }}</td><td>{{ r.battles }}</td>
        <td>{{ r.wins }}/{{ r.losses }}/{{ r.ties }}</td><td>{{ r.win_rate_text }}</td>
        <td>{{ r.p50_text }}</td><td>{{ r.p95_text }}</td><td>{{ r.cost_text }}</td>
        <td>{{ r.failed_text }}</td>
      </tr>
      {% endfor %}
    </table>
    {% for note in b.notes %}<p class="note">{{ note }}</p>{% endfor %}
  </article>
  {% endfor %}
</section>
<section id="tags">
  <h2>Per tag</h2>
  {% for h in heatmaps %}<img class="chart" alt="ratings per tag, judge {{ h.judge }}" src="{{ h.chart }}">
  {% else %}<p class="note">No per-tag boards: no tag has at least {{ min_tag_prompts }}
    prompts.</p>{% endfor %}
</section>
<section id="winrate">
  <h2>Win rates</h2>
  <div class="charts">{% for m in matrices %}<img class="chart" alt="win-rate matrix, judge {{ m.judge }}" src="{{ m.chart }}">{% endfor %}</div>
</section>
<section id="tradeoffs">
  <h2>Quality vs latency and cost</h2>
  <p class="note">The Pareto front (red) holds the models that no other model beats on
    both rating and latency (or cost), by point ratings; the CIs show how sure that is.</p>
  {% for t in tradeoffs %}
  <h3>{{ t.title }}</h3>
  <div class="charts">{% for key in ("latency", "cost") if t[key] %}
    <img class="chart" alt="rating vs {{ key }}, {{ t.judge }}" src="{{ t[key] }}">{% endfor %}</div>
  {% for note in (t.latency_note, t.cost_note) if note %}<p class="note">{{ note }}</p>{% endfor %}
  <p class="note">Pareto front by latency: {{ t.front_latency|join(", ") or "-" }};
    by cost: {{ t.front_cost|join(", ") or "-" }}</p>
  {% endfor %}
</section>
<section id="agreement">
  <h2>Judge agreement</h2>
  {% if agreement %}
  <table>
    <tr><th class="l">judge A</th><th class="l">judge B</th><th>shared</th><th>agree</th>
      <th>{{ confidence_pct }} CI</th><th>decisive</th><th>kappa</th><th>kendall tau</th>
      <th>spearman</th></tr>
    {% for r in agreement %}<tr><td class="l">{{ r.judge_a }}</td><td class="l">{{ r.judge_b }}</td>
      <td>{{ r.n_shared }}</td><td>{{ r.agree }}</td><td>{{ r.ci }}</td><td>{{ r.decisive }}</td>
      <td>{{ r.kappa }}</td><td>{{ r.tau }}</td><td>{{ r.rho }}</td></tr>{% endfor %}
  </table>
  {% if agreement_chart %}<img class="chart" alt="judge agreement" src="{{ agreement_chart }}">{% endif %}
  {% else %}<p class="note">One judge: no agreement to measure.</p>{% endif %}
</section>
{% if style %}<section id="style">
  <h2>Style control: what each judge rewards besides the prompt</h2>
  {% if rewards.judges %}<table>
    <tr><th class="l">feature (Elo per sd, {{ confidence_pct }} CI)</th>
      {% for j in rewards.judges %}<th>{{ j }}</th>{% endfor %}</tr>
    {% for r in rewards.rows %}<tr><td class="l">{{ r.feature }}</td>
      {% for c in r.cells %}<td>{{ c }}</td>{% endfor %}</tr>{% endfor %}
  </table>{% endif %}
  {% for b in style %}
  <h3>judge {{ b.judge }}: {{ b.features }} held fixed</h3>
  {% if b.note %}<p class="note">{{ b.note }}</p>{% else %}
  <table>
    <tr><th>rank</th><th class="l">model</th><th>rating</th><th>{{ confidence_pct }} CI</th>
      <th>raw rank</th><th>change</th></tr>
    {% for r in b.rows %}<tr><td>{{ r.rank }}</td><td class="l">{{ r.model }}</td>
      <td>{{ r.rating }}</td><td>{{ r.ci }}</td><td>{{ r.raw_rank }}</td>
      <td>{{ r.change }}</td></tr>{% endfor %}
  </table>
  {% if b.coefficients %}<table>
    <tr><th class="l">feature</th><th>Elo per sd</th><th>{{ confidence_pct }} CI</th>
      <th>sd</th></tr>
    {% for c in b.coefficients %}<tr><td class="l">{{ c.feature }}</td><td>{{ c.elo }}</td>
      <td>{{ c.ci }}</td><td>{{ c.sd }}</td></tr>{% endfor %}
  </table>{% endif %}{% endif %}
  {% for d in b.dropped %}<p class="note">left out: {{ d }}</p>{% endfor %}
  {% endfor %}
</section>{% endif %}
<section id="prompts">
  <h2>Prompts</h2>
  <p class="note">Showing {{ prompts|length }} of {{ n_prompt_rows }} prompt/seed rows; every
    model side by side, each judge's score (pointwise) or wins/losses/ties (pairwise)
    under each image.</p>
  {% for p in prompts %}
  <div class="prompt" id="p-{{ loop.index }}">
    <b>{{ p.id }}</b> <span class="note">seed {{ p.seed }}</span>
    <p class="text">{{ p.text }}</p>
    {% if p.expected_text %}<p class="note">expected text: {{ p.expected_text }}</p>{% endif %}
    <div class="tags">{% for t in p.tags %}<span>{{ t }}</span>{% endfor %}</div>
    <div class="grid">{% for c in p.cells %}
      <figure class="cell">{% if c.src %}<img src="{{ c.src }}" alt="{{ c.model }}: {{ p.id }}">{% else %}<div class="missing">{{ c.missing }}</div>{% endif %}
        <figcaption><b>{{ c.model }}</b>{% for line in c.lines %}<span>{{ line }}</span>{% endfor %}</figcaption>
      </figure>{% endfor %}
    </div>
  </div>
  {% endfor %}
</section>
<p class="note">Made by autojudge from {{ run_dir_name }}; rebuild with
  <code>python -m autojudge.report RUN_DIR</code>.</p>
</main>
</body>
</html>
"""
