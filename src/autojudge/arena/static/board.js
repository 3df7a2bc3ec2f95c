// The leaderboard page: renders GET /api/leaderboard's document and re-renders on every
// Server-Sent Event "leaderboard" (online Elo on each vote, BT + CIs after each refit).
// Display strings (rating_text, ci_text) come from the server, which follows the board
// semantics: "unrated", open CI sides (">= 1389", "<= 821", "unbounded").
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }
  const fmt = (v, digits = 0) => (v === null || v === undefined ? "-" : Number(v).toFixed(digits));
  const pct = (v) => (v === null || v === undefined ? "-" : `${Math.round(100 * v)}%`);
  const plural = (n, word) => `${n} ${word}${Number(n) === 1 ? "" : "s"}`;
  // what the agreement columns mean, on hover (the page's note says it once more)
  const TIPS = {
    agreement: "share of shared battles where the judge and people gave the same verdict (a tie counts as a tie)",
    decisive: "agreement on the battles where both the judge and people picked a winner (ties left out)",
    kappa: "Cohen's kappa: agreement beyond chance; 0 = chance, 1 = always the same verdict",
    "Kendall tau": "rank correlation of the judge's board and the people's board; 1 = same order",
  };

  function table(node, head, rows) {
    const thead = el("thead");
    const tr = el("tr");
    // a header aligns as its column's cells (numbers right)
    const first = rows.length ? [...rows[0].children] : [];
    head.forEach((h, k) => {
      const th = el("th", h, first[k] && first[k].classList.contains("num") ? "num" : "");
      if (TIPS[h]) th.title = TIPS[h];
      tr.appendChild(th);
    });
    thead.appendChild(tr);
    const tbody = el("tbody");
    for (const row of rows) tbody.appendChild(row);
    node.replaceChildren(thead, tbody);
  }

  function boardTitle(board) {
    if (board.judge === "human") return "People (arena votes)";
    if (board.judge === "all") return "All judges";
    return `Judge: ${board.judge}`;
  }

  function boardCard(board, level) {
    const card = el("article", null, "card" + (board.judge === "human" ? " human" : ""));
    card.dataset.judge = board.judge;
    card.appendChild(el("h2", boardTitle(board)));
    const unit = board.judge === "human" ? "vote" : "battle";
    card.appendChild(el("p", `${plural(board.n_battles, unit)} · ${plural(board.n_prompts || 0, "prompt")}`, "meta"));
    if (board.connected === false) {
      card.appendChild(el("p", `Not connected: ${board.n_components} groups of models were ` +
        "never linked by battles; ratings and ranks compare only within a group.", "warn"));
    }
    const t = el("table");
    const rows = board.models.map((r) => {
      const tr = el("tr", null, r.rating === null ? "unrated" : "");
      tr.dataset.model = r.model;
      tr.appendChild(el("td", r.rank === null ? "-" : r.rank, "num"));
      const name = el("td", r.model, "model");
      if (board.connected === false && r.component !== null) {
        name.appendChild(el("span", ` g${r.component + 1}`, "group"));
      }
      if (r.rating === null && r.unrated_reason) name.title = r.unrated_reason;
      tr.appendChild(name);
      tr.appendChild(el("td", r.rating_text + (r.separated ? "*" : ""), "num rating"));
      tr.appendChild(el("td", r.ci_text, "num ci"));
      tr.appendChild(el("td", fmt(r.elo), "num"));
      tr.appendChild(el("td", `${r.wins}/${r.losses}/${r.ties}`, "num"));
      return tr;
    });
    table(t, ["#", "model", "rating", `${level} CI`, "Elo", "W/L/T"], rows);
    card.appendChild(t);
    const unrated = board.models.filter((r) => r.rating === null);
    for (const r of unrated) {
      card.appendChild(el("p", `unrated ${r.model}: ${r.unrated_reason || "no battles"}`, "reason"));
    }
    return card;
  }

  function modelsTable(doc) {
    const human = doc.boards.find((b) => b.judge === "human");
    const byModel = Object.fromEntries((human ? human.models : []).map((r) => [r.model, r]));
    const stats = Object.fromEntries(doc.models.map((m) => [m.model, m]));
    const rows = doc.run.models.map((name) => {
      const h = byModel[name] || {};
      const s = stats[name] || {};
      const tr = el("tr");
      tr.dataset.model = name;
      tr.appendChild(el("td", name, "model"));
      tr.appendChild(el("td", h.rating_text || "unrated", "num"));
      tr.appendChild(el("td", h.ci_text || "-", "num ci"));
      tr.appendChild(el("td", s.latency_p50_s === undefined ? "-" : `${fmt(s.latency_p50_s, 3)} s`, "num"));
      tr.appendChild(el("td", s.latency_p95_s === undefined ? "-" : `${fmt(s.latency_p95_s, 3)} s`, "num"));
      tr.appendChild(el("td", s.cost_per_image_usd === null || s.cost_per_image_usd === undefined
        ? "-" : `$${Number(s.cost_per_image_usd).toFixed(4)}`, "num"));
      tr.appendChild(el("td", s.failure_rate === undefined ? "-" : pct(s.failure_rate), "num"));
      return tr;
    });
    table($("models"), ["model", "human rating", "CI", "latency p50", "latency p95",
      "$ / image", "failed"], rows);
  }

  function agreementTable(doc, level) {
    const rows = doc.agreement.map((a) => {
      const tr = el("tr");
      tr.dataset.judge = a.judge_a;
      tr.appendChild(el("td", a.judge_a, "model"));
      tr.appendChild(el("td", a.n_shared, "num"));
      tr.appendChild(el("td", pct(a.agreement), "num"));
      tr.appendChild(el("td", a.ci_text, "num ci"));
      tr.appendChild(el("td", pct(a.decisive_agreement), "num"));
      tr.appendChild(el("td", fmt(a.kappa, 2), "num"));
      tr.appendChild(el("td", fmt(a.kendall_tau, 2), "num"));
      return tr;
    });
    if (!rows.length) {
      const tr = el("tr");
      const td = el("td", "No automated judge in these runs.", "note");
      td.colSpan = 7;
      tr.appendChild(td);
      rows.push(tr);
    }
    table($("agreement"), ["judge", "shared battles", "agreement", `${level} CI`,
      "decisive", "kappa", "Kendall tau"], rows);
  }

  function ago(t) {
    const s = Math.max(0, Date.now() / 1000 - t);
    return s < 60 ? `${Math.round(s)} s ago` : `${Math.round(s / 60)} min ago`;
  }

  function render(doc) {
    const level = `${Math.round(100 * ((doc.run.ratings || {}).confidence || 0.95))}%`;
    const live = doc.live;
    $("n-votes").textContent = String(live.n_votes);
    $("n-votes-unit").textContent = live.n_votes === 1 ? "human vote" : "human votes";
    document.body.dataset.votes = String(live.n_votes);
    $("refit").textContent = live.refit_at
      ? `· Bradley-Terry ratings and CIs from ${plural(live.refit_n_votes, "vote")} (${ago(live.refit_at)});` +
        " online Elo and counts from every vote" + (live.refit_error ? ` · refit failed: ${live.refit_error}` : "")
      : "· first rating fit running";
    if (doc.run.arena.read_only) $("vote-link").hidden = true;
    $("boards").replaceChildren(...doc.boards.map((b) => boardCard(b, level)));
    modelsTable(doc);
    agreementTable(doc, level);
    const notes = [];
    if (doc.boards.some((b) => b.models.some((r) => r.separated))) {
      notes.push("* never lost (or never won) against part of its group: the data bound " +
        "this rating on one side only (shown as >= or <=).");
    }
    if ((doc.run.runs || []).length > 1) {
      notes.push("Runs: " + doc.run.runs.map(
        (r) => (r.name && r.name !== r.label ? `${r.label} = run ${r.name}` : r.label)).join("; "));
    }
    $("notes").replaceChildren(...notes.map((n) => el("p", n)));
  }

  const events = new EventSource("/events");
  events.addEventListener("leaderboard", (ev) => render(JSON.parse(ev.data)));
  events.addEventListener("open", () => {
    document.body.dataset.live = "live";
    $("live").textContent = "live";
  });
  events.addEventListener("error", () => {
    document.body.dataset.live = "reconnecting";
    $("live").textContent = "reconnecting…";
  });
})();
