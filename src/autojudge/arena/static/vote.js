// The vote page: show a pair, send the vote, reveal the models, move on.
// The next pair (and its images) is always fetched ahead, so voting never waits.
// Every text from the server is set with textContent (never parsed as HTML).
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  // ?reveal=MS: how long the reveal stays before the next pair (0: until Space/Enter/Next)
  const REVEAL_MS = params.has("reveal") ? Number(params.get("reveal")) : 2000;
  const KEYS = {
    ArrowLeft: "left", "1": "left", ArrowRight: "right", "2": "right",
    ArrowDown: "tie", "3": "tie", ArrowUp: "bothbad", "4": "bothbad",
  };
  const state = {
    current: null, nextPromise: null, busy: false, revealed: false, votes: 0,
    tag: params.get("tag") || "", timer: null,
  };

  const setState = (s) => { document.body.dataset.state = s; };

  function preload(src) {
    const img = new Image();
    img.src = src;
    return img.decode().catch(() => undefined);
  }

  async function fetchPair() {
    const url = "/api/pair" + (state.tag ? "?tag=" + encodeURIComponent(state.tag) : "");
    const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    await Promise.all([preload(body.left.image_url), preload(body.right.image_url)]);
    return body;
  }

  function prefetch() {
    state.nextPromise = fetchPair();
    state.nextPromise.catch(() => undefined); // reported when it is needed
  }

  async function advance() {
    clearTimeout(state.timer);
    const pending = state.nextPromise;
    state.nextPromise = null;
    let pair;
    try {
      pair = pending ? await pending : await fetchPair();
    } catch (err) {
      try { pair = await fetchPair(); } catch (err2) { showError(err2); return; }
    }
    show(pair);
    prefetch();
  }

  function show(pair) {
    state.current = pair;
    state.revealed = false;
    $("prompt").textContent = pair.prompt;
    const tags = $("tags");
    tags.replaceChildren(...pair.tags.map((t) => {
      const li = document.createElement("li");
      li.textContent = t;
      return li;
    }));
    $("img-left").src = pair.left.image_url;
    $("img-right").src = pair.right.image_url;
    for (const side of ["left", "right"]) {
      $("reveal-" + side).replaceChildren();
      $("side-" + side).className = "side";
    }
    $("status").textContent = "";
    $("next").hidden = true;
    setState("voting");
  }

  function showError(err) {
    $("status").textContent = String(err.message || err);
    setState("error");
  }

  async function vote(choice) {
    if (state.busy || state.revealed || !state.current) return;
    if (document.activeElement && document.activeElement.blur) document.activeElement.blur();
    state.busy = true;
    setState("sending");
    try {
      const response = await fetch("/api/vote", {
        method: "POST", credentials: "same-origin",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ token: state.current.token, choice }),
      });
      const body = await response.json();
      if (!response.ok) {
        state.revealed = true;
        $("status").textContent = body.error || response.statusText;
        $("next").hidden = false;
        setState("refused");
        state.timer = setTimeout(advance, 1500);
        return;
      }
      state.votes += 1;
      $("my-votes").textContent = String(state.votes);
      reveal(body);
    } catch (err) {
      showError(err);
    } finally {
      state.busy = false;
    }
  }

  function reveal(result) {
    state.revealed = true;
    const outcome = { left: "won", right: "lost" }[result.choice];
    for (const side of ["left", "right"]) {
      const r = result.ratings[side];
      const name = document.createElement("strong");
      name.className = "model";
      name.textContent = result[side];
      const rating = document.createElement("span");
      rating.className = "rating";
      rating.textContent = r.rating === null
        ? "unrated yet"
        : `${r.rating_text} (CI ${r.ci_text})` + (r.rank ? ` · rank ${r.rank}` : "");
      $("reveal-" + side).replaceChildren(name, rating);
      let cls = "tie";
      if (result.choice === "bothbad") cls = "bad";
      else if (outcome) cls = (side === "left") === (outcome === "won") ? "won" : "lost";
      $("side-" + side).className = "side " + cls;
    }
    const said = {
      left: `You preferred ${result.left}.`, right: `You preferred ${result.right}.`,
      tie: "You called it a tie.", bothbad: "You found both bad.",
    }[result.choice];
    const soFar = `${result.n_votes} vote${result.n_votes === 1 ? "" : "s"} so far`;
    $("status").textContent = `${said} ${soFar}.`;
    $("next").hidden = false;
    setState("revealed");
    if (REVEAL_MS > 0) state.timer = setTimeout(advance, REVEAL_MS);
  }

  document.addEventListener("keydown", (ev) => {
    if (ev.altKey || ev.ctrlKey || ev.metaKey) return;
    if (ev.target && ev.target.tagName === "SELECT") return;
    if (state.revealed && (ev.key === " " || ev.key === "Enter" || ev.key === "n")) {
      ev.preventDefault();
      advance();
      return;
    }
    const choice = KEYS[ev.key];
    if (choice) {
      ev.preventDefault();
      vote(choice);
    }
  });

  for (const button of document.querySelectorAll("[data-choice]")) {
    button.addEventListener("click", () => vote(button.dataset.choice));
  }
  $("next").addEventListener("click", () => advance());

  async function loadTags() {
    const response = await fetch("/api/info", { credentials: "same-origin" });
    if (!response.ok) return;
    const info = await response.json();
    const select = $("tag");
    for (const tag of info.tags) {
      const option = document.createElement("option");
      option.value = tag;
      option.textContent = tag;
      select.appendChild(option);
    }
    select.value = state.tag;
    select.addEventListener("change", () => {
      state.tag = select.value;
      const url = new URL(location.href);
      if (state.tag) url.searchParams.set("tag", state.tag);
      else url.searchParams.delete("tag");
      history.replaceState(null, "", url);
      state.nextPromise = null; // the prefetched pair may not have this tag
      select.blur();
      advance();
    });
  }

  loadTags();
  advance();
})();
