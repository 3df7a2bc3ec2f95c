// The K-wise vote page (--k K): show K images of one prompt, take the best or a full
// order, send the vote, reveal the models, move on. The next group (and its images) is
// fetched ahead, as on the pair page. Every text from the server is set with textContent.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  // ?reveal=MS: how long the reveal stays before the next group (0: until Space/Enter/Next)
  const REVEAL_MS = params.has("reveal") ? Number(params.get("reveal")) : 2500;
  const ORDINAL = ["1st", "2nd", "3rd"];
  const state = {
    current: null, nextPromise: null, busy: false, revealed: false, votes: 0,
    tag: params.get("tag") || "", timer: null, order: [],
    mode: params.get("mode") === "order" ? "order" : "best",
  };

  const setState = (s) => { document.body.dataset.state = s; };
  const ordinal = (n) => ORDINAL[n - 1] || `${n}th`;
  const k = () => (state.current ? state.current.images.length : 0);

  function preload(src) {
    const img = new Image();
    img.src = src;
    return img.decode().catch(() => undefined);
  }

  async function fetchGroup() {
    const url = "/api/group" + (state.tag ? "?tag=" + encodeURIComponent(state.tag) : "");
    const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    await Promise.all(body.images.map((image) => preload(image.image_url)));
    return body;
  }

  function prefetch() {
    state.nextPromise = fetchGroup();
    state.nextPromise.catch(() => undefined); // reported when it is needed
  }

  async function advance() {
    clearTimeout(state.timer);
    const pending = state.nextPromise;
    state.nextPromise = null;
    let group;
    try {
      group = pending ? await pending : await fetchGroup();
    } catch (err) {
      try { group = await fetchGroup(); } catch (err2) { showError(err2); return; }
    }
    show(group);
    prefetch();
  }

  function figure(image) {
    const slot = image.slot;
    const fig = document.createElement("figure");
    fig.className = "side";
    fig.id = "slot-" + slot;
    const button = document.createElement("button");
    button.className = "image";
    button.id = "pick-" + slot;
    button.title = `Image ${slot + 1}`;
    const img = document.createElement("img");
    img.id = "img-" + slot;
    img.alt = `image ${slot + 1}`;
    img.src = image.image_url;
    button.appendChild(img);
    button.addEventListener("click", () => pick(slot));
    const caption = document.createElement("figcaption");
    const which = document.createElement("span");
    which.className = "which";
    const key = document.createElement("kbd");
    key.textContent = String(slot + 1);
    which.append(key, ` Image ${slot + 1}`);
    const rank = document.createElement("span");
    rank.className = "rank";
    rank.id = "rank-" + slot;
    const reveal = document.createElement("span");
    reveal.className = "reveal";
    reveal.id = "reveal-" + slot;
    caption.append(which, rank, reveal);
    fig.append(button, caption);
    return fig;
  }

  function show(group) {
    state.current = group;
    state.revealed = false;
    state.order = [];
    $("prompt").textContent = group.prompt;
    $("tags").replaceChildren(...group.tags.map((t) => {
      const li = document.createElement("li");
      li.textContent = t;
      return li;
    }));
    const grid = $("grid");
    grid.dataset.k = String(group.images.length);
    grid.replaceChildren(...group.images.map(figure));
    $("status").textContent = "";
    $("next").hidden = true;
    showOrder();
    setState("voting");
  }

  function setMode(mode) {
    if (state.revealed || state.busy) return;
    state.mode = mode;
    state.order = [];
    document.body.dataset.mode = mode;
    $("mode-best").setAttribute("aria-pressed", String(mode === "best"));
    $("mode-order").setAttribute("aria-pressed", String(mode === "order"));
    $("ask").textContent = mode === "best" ? "Which image follows the prompt best?"
      : "Rank the images: how well does each follow the prompt?";
    showOrder();
  }

  function showOrder() {
    for (let slot = 0; slot < k(); slot += 1) {
      const position = state.order.indexOf(slot);
      $("rank-" + slot).textContent = position >= 0 ? ordinal(position + 1) : "";
      $("slot-" + slot).className = position >= 0 ? "side picked" : "side";
    }
    const done = state.order.length === k() && k() > 0;
    $("btn-submit").disabled = !done;
    document.body.dataset.picked = String(state.order.length);
  }

  function pick(slot) {
    if (state.busy || state.revealed || !state.current || slot >= k()) return;
    if (state.mode === "best") {
      vote({ best: slot });
      return;
    }
    const at = state.order.indexOf(slot);
    if (at >= 0) state.order = state.order.slice(0, at); // a ranked image: back to it
    else state.order.push(slot);
    if (state.order.length === k() - 1) { // the last one is the worst: no click needed
      for (let s = 0; s < k(); s += 1) if (!state.order.includes(s)) state.order.push(s);
    }
    showOrder();
  }

  function undo() {
    if (state.busy || state.revealed) return;
    // an auto-filled last pick goes with the one before it
    state.order = state.order.slice(0, state.order.length === k() ? k() - 2 : -1);
    showOrder();
  }

  function submit() {
    if (state.mode === "order" && state.order.length === k()) vote({ order: state.order });
  }

  function showError(err) {
    $("status").textContent = String(err.message || err);
    setState("error");
  }

  async function vote(payload) {
    if (state.busy || state.revealed || !state.current) return;
    if (document.activeElement && document.activeElement.blur) document.activeElement.blur();
    state.busy = true;
    setState("sending");
    try {
      const response = await fetch("/api/vote", {
        method: "POST", credentials: "same-origin",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ token: state.current.token, ...payload }),
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
    result.models.forEach((model, slot) => {
      const r = result.ratings[slot];
      const rank = result.ranks[slot];
      const name = document.createElement("strong");
      name.className = "model";
      name.textContent = model;
      const rating = document.createElement("span");
      rating.className = "rating";
      rating.textContent = r.rating === null
        ? "unrated yet"
        : `${r.rating_text} (CI ${r.ci_text})` + (r.rank ? ` · rank ${r.rank}` : "");
      $("reveal-" + slot).replaceChildren(name, rating);
      $("rank-" + slot).textContent = result.choice === "tie" ? "equal"
        : rank === null ? "" : ordinal(rank);
      $("slot-" + slot).className = "side " + (result.choice === "tie" ? "tie"
        : rank === 1 ? "won" : "lost");
    });
    const best = result.models[result.ranks.indexOf(1)];
    const said = {
      best: `You picked ${best}.`, order: `You ranked ${best} first.`,
      tie: "You found them all equal.",
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
    if (/^[1-9]$/.test(ev.key)) {
      ev.preventDefault();
      pick(Number(ev.key) - 1);
    } else if (ev.key === "0") {
      ev.preventDefault();
      vote({ tie: true });
    } else if (ev.key === "Enter") {
      ev.preventDefault();
      submit();
    } else if (ev.key === "Backspace") {
      ev.preventDefault();
      undo();
    } else if (ev.key === "m" || ev.key === "M") {
      setMode(state.mode === "best" ? "order" : "best");
    }
  });

  $("mode-best").addEventListener("click", () => setMode("best"));
  $("mode-order").addEventListener("click", () => setMode("order"));
  $("btn-tie").addEventListener("click", () => vote({ tie: true }));
  $("btn-undo").addEventListener("click", () => undo());
  $("btn-submit").addEventListener("click", () => submit());
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
      state.nextPromise = null; // the prefetched group may not have this tag
      select.blur();
      advance();
    });
  }

  setMode(state.mode);
  loadTags();
  advance();
})();
