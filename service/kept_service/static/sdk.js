/* kept browser snippet: feedback on one generation from a web page.
 *
 * The app's server mints a short-lived feedback token for the generation it shows
 * (POST /v1/feedback-tokens, with its project key) and puts it in the page:
 *
 *   <script src="https://kept.example/sdk.js"></script>
 *   const fb = kept.feedback({ token });        // endpoint: where this file came from
 *   fb.vote(1, { comment: "spot on" });  fb.accept();  fb.correct(editedText);
 *
 * Every call returns a Promise<boolean>: true once kept has stored the event. It never
 * rejects, because feedback must never break the page. No dependencies, no build step.
 *
 * Survival (is the accepted text still there later?), after fb.accept():
 *
 *   fb.trackSurvival(textarea);                  // or a contenteditable element, or
 *   fb.trackSurvival(() => editor.getValue(), { text: accepted, key: "reply" });
 *   kept.resumeSurvival((generationId, key) => placeOf(key));   // on every page load
 *
 * Each checkpoint (default 30, 120, 300, 600, 900 s) sends a survival event scored by
 * kept.survivalScore, the port of Python's kept.survival_score (identical results).
 * Pending checks are kept in localStorage ("kept.survival.v1"): at most 50 checks and
 * 200,000 characters of accepted text per origin. A check past those limits still runs
 * while the page stays open but is not stored (trackSurvival returns persisted: false),
 * so a reload ends it. The token must outlive the last checkpoint (mint it with ttl_s of
 * at least the last checkpoint plus a few minutes; the server default, 3600 s, does).
 * No-revert guard: text gone revertWindow seconds after the accept (default 5) and still
 * gone at the first checkpoint is a revert: that checkpoint's survival event (score 0) is
 * sent with an action "revert", and no later checkpoint is read.
 */
(function (global) {
  "use strict";

  // Only set while this file first runs, so it is read now, not when feedback is sent.
  const script = global.document && global.document.currentScript;
  const scriptBase = script && script.src ? new URL(".", script.src).href : null;

  // Browsers refuse keepalive requests once their bodies in flight pass 64 KiB.
  const KEEPALIVE_MAX_BYTES = 60000;
  const ATTEMPTS = 3;

  function uuid() {
    // randomUUID exists only in secure contexts (https, localhost); plain-http pages
    // still have getRandomValues.
    if (global.crypto && global.crypto.randomUUID) return global.crypto.randomUUID();
    const b = global.crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return [h.slice(0, 8), h.slice(8, 12), h.slice(12, 16), h.slice(16, 20), h.slice(20)].join("-");
  }

  // The token's payload (base64url JSON before the dot) names its generation and expiry,
  // which saves the page from passing the id twice. Only the server's check counts.
  function claims(token) {
    try {
      const part = token.slice(4, token.lastIndexOf("."));
      return JSON.parse(atob(part.replace(/-/g, "+").replace(/_/g, "/"))) || {};
    } catch (e) {
      return {};
    }
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  async function post(url, body) {
    // keepalive lets a click that also navigates away (copy, then leave) still arrive.
    const keepalive = new TextEncoder().encode(body).length <= KEEPALIVE_MAX_BYTES;
    for (let attempt = 1; ; attempt++) {
      let status = 0;
      let message = "network error";
      try {
        // A string body goes as text/plain: a CORS "simple request", so no preflight.
        const response = await fetch(url, { method: "POST", body, keepalive, credentials: "omit" });
        if (response.ok) return true;
        status = response.status;
        message = (await response.json().catch(() => ({}))).message || response.statusText;
      } catch (e) {
        // Network failure: worth another attempt (event ids make retries safe).
      }
      // A refusal (bad token, bad event) stays a refusal; overload and outages may pass.
      const final = status >= 400 && status < 500 && status !== 429;
      if (final || attempt >= ATTEMPTS) {
        console.warn("kept: feedback not stored:", status || "", message);
        return false;
      }
      await sleep(500 * attempt);
    }
  }


  // ---- the survival score: kept.survival_tracking.survival_score, ported ---------------
  //
  // Same tokens as Python's re.findall(r"\w+|[^\w\s]", text.casefold()): runs of letters,
  // digits and "_" (Python's \w is exactly \p{L}\p{N}_) and single other characters, with
  // Python's whitespace (which, unlike JS's \s, holds \x1c-\x1f and \x85 but not \ufeff).
  // casefold is Unicode full case folding: per character, toLowerCase except for the
  // characters below (from Python: casefold differs from lower) and Cherokee, which folds
  // to upper case. tests/data/survival_vectors.json holds cases both languages must pass.
  const WORD = "\\p{L}\\p{N}_";
  const SPACE = "\\t\\n\\v\\f\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
  const TOKEN = new RegExp("[" + WORD + "]+|[^" + WORD + SPACE + "]", "gu");
  const FOLD = new Map(
    "\u00b5\u03bc|\u00dfss|\u0149\u02bcn|\u017fs|\u01f0j\u030c|\u0345\u03b9|\u0390\u03b9\u0308\u0301|\u03b0\u03c5\u0308\u0301|\u03c2\u03c3|\u03d0\u03b2|\u03d1\u03b8|\u03d5\u03c6|\u03d6\u03c0|\u03f0\u03ba|\u03f1\u03c1|\u03f5\u03b5|\u0587\u0565\u0582|\u1c80\u0432|\u1c81\u0434|\u1c82\u043e|\u1c83\u0441|\u1c84\u0442|\u1c85\u0442|\u1c86\u044a|\u1c87\u0463|\u1c88\ua64b|\u1e96h\u0331|\u1e97t\u0308|\u1e98w\u030a|\u1e99y\u030a|\u1e9aa\u02be|\u1e9b\u1e61|\u1e9ess|\u1f50\u03c5\u0313|\u1f52\u03c5\u0313\u0300|\u1f54\u03c5\u0313\u0301|\u1f56\u03c5\u0313\u0342|\u1f80\u1f00\u03b9|\u1f81\u1f01\u03b9|\u1f82\u1f02\u03b9|\u1f83\u1f03\u03b9|\u1f84\u1f04\u03b9|\u1f85\u1f05\u03b9|\u1f86\u1f06\u03b9|\u1f87\u1f07\u03b9|\u1f88\u1f00\u03b9|\u1f89\u1f01\u03b9|\u1f8a\u1f02\u03b9|\u1f8b\u1f03\u03b9|\u1f8c\u1f04\u03b9|\u1f8d\u1f05\u03b9|\u1f8e\u1f06\u03b9|\u1f8f\u1f07\u03b9|\u1f90\u1f20\u03b9|\u1f91\u1f21\u03b9|\u1f92\u1f22\u03b9|\u1f93\u1f23\u03b9|\u1f94\u1f24\u03b9|\u1f95\u1f25\u03b9|\u1f96\u1f26\u03b9|\u1f97\u1f27\u03b9|\u1f98\u1f20\u03b9|\u1f99\u1f21\u03b9|\u1f9a\u1f22\u03b9|\u1f9b\u1f23\u03b9|\u1f9c\u1f24\u03b9|\u1f9d\u1f25\u03b9|\u1f9e\u1f26\u03b9|\u1f9f\u1f27\u03b9|\u1fa0\u1f60\u03b9|\u1fa1\u1f61\u03b9|\u1fa2\u1f62\u03b9|\u1fa3\u1f63\u03b9|\u1fa4\u1f64\u03b9|\u1fa5\u1f65\u03b9|\u1fa6\u1f66\u03b9|\u1fa7\u1f67\u03b9|\u1fa8\u1f60\u03b9|\u1fa9\u1f61\u03b9|\u1faa\u1f62\u03b9|\u1fab\u1f63\u03b9|\u1fac\u1f64\u03b9|\u1fad\u1f65\u03b9|\u1fae\u1f66\u03b9|\u1faf\u1f67\u03b9|\u1fb2\u1f70\u03b9|\u1fb3\u03b1\u03b9|\u1fb4\u03ac\u03b9|\u1fb6\u03b1\u0342|\u1fb7\u03b1\u0342\u03b9|\u1fbc\u03b1\u03b9|\u1fbe\u03b9|\u1fc2\u1f74\u03b9|\u1fc3\u03b7\u03b9|\u1fc4\u03ae\u03b9|\u1fc6\u03b7\u0342|\u1fc7\u03b7\u0342\u03b9|\u1fcc\u03b7\u03b9|\u1fd2\u03b9\u0308\u0300|\u1fd3\u03b9\u0308\u0301|\u1fd6\u03b9\u0342|\u1fd7\u03b9\u0308\u0342|\u1fe2\u03c5\u0308\u0300|\u1fe3\u03c5\u0308\u0301|\u1fe4\u03c1\u0313|\u1fe6\u03c5\u0342|\u1fe7\u03c5\u0308\u0342|\u1ff2\u1f7c\u03b9|\u1ff3\u03c9\u03b9|\u1ff4\u03ce\u03b9|\u1ff6\u03c9\u0342|\u1ff7\u03c9\u0342\u03b9|\u1ffc\u03c9\u03b9|\ufb00ff|\ufb01fi|\ufb02fl|\ufb03ffi|\ufb04ffl|\ufb05st|\ufb06st|\ufb13\u0574\u0576|\ufb14\u0574\u0565|\ufb15\u0574\u056b|\ufb16\u057e\u0576|\ufb17\u0574\u056d".split("|").map((pair) => [pair[0], pair.slice(1)]),
  );
  const CHEROKEE = /[\u13a0-\u13f5\u13f8-\u13fd\uab70-\uabbf]/u;
  const foldChar = (ch) => FOLD.get(ch) ?? (CHEROKEE.test(ch) ? ch.toUpperCase() : ch.toLowerCase());

  /** Python's str.casefold(), per code point (no context, unlike toLowerCase's final sigma). */
  function casefold(text) {
    return String(text).replace(/[^\0-@\[-\x7f]/gu, foldChar);
  }

  /** Words and punctuation marks of text, case-folded: kept.survival_tracking.tokens. */
  function tokens(text) {
    return casefold(text).match(TOKEN) || [];
  }

  /**
   * The share (0..1) of original's tokens still in current: a token counts when a run of
   * n consecutive original tokens holding it occurs in current (each run of current
   * matched once). Identical results to Python's kept.survival_score.
   */
  function survivalScore(original, current, n) {
    const words = tokens(original);
    if (!words.length) return 1;
    const size = Math.max(1, Math.min(n === undefined ? 3 : n, words.length));
    const seen = tokens(current);
    // Tokens hold no whitespace, so "\n" joins a run into an unambiguous key.
    const available = new Map();
    for (let i = 0; i + size <= seen.length; i++) {
      const key = seen.slice(i, i + size).join("\n");
      available.set(key, (available.get(key) || 0) + 1);
    }
    const covered = new Uint8Array(words.length);
    for (let i = 0; i + size <= words.length; i++) {
      const key = words.slice(i, i + size).join("\n");
      const left = available.get(key);
      if (left > 0) {
        available.set(key, left - 1);
        covered.fill(1, i, i + size);
      }
    }
    let count = 0;
    for (const c of covered) count += c;
    return count / words.length;
  }

  // ---- survival tracking ---------------------------------------------------------------
  //
  // fb.trackSurvival(source, { text, checkpoints }) reads the user's current text at each
  // checkpoint (seconds after the call) and sends a survival event with its score. Pending
  // checks live in localStorage too, so that a page closed or reloaded before the last
  // checkpoint can resume them: kept.resumeSurvival(resolve) on the next load.
  const STORE_KEY = "kept.survival.v1";
  const MAX_STORED = 50;
  const MAX_STORED_CHARS = 200000;
  const STALE_OWNER_MS = 30 * 60 * 1000;
  const DEFAULT_CHECKPOINTS = [30, 120, 300, 600, 900];
  const REVERT_WINDOW_S = 5;
  const pageId = uuid();
  const active = new Map(); // check id -> { check, read }
  const stats = { sent: 0, refused: 0, skipped: 0, gone: 0, reverted: 0, notPersisted: 0, evicted: 0 };
  const forgotten = new Set(); // ids this page finished or dropped: removed from storage
  let timer = null;

  /** The text a source holds: a function, a textarea/input, or any element (contenteditable). */
  function reader(source) {
    if (typeof source === "function") return source;
    if (source && typeof source === "object" && "nodeType" in source) {
      return () => {
        if (!source.isConnected) return null; // removed from the page: the text is gone
        const tag = source.tagName;
        if (tag === "TEXTAREA" || tag === "INPUT") return source.value;
        return source.innerText;
      };
    }
    throw new TypeError("kept: trackSurvival needs a function, a text field or an element");
  }

  function loadStored() {
    try {
      const parsed = JSON.parse(global.localStorage.getItem(STORE_KEY) || "[]");
      return Array.isArray(parsed) ? parsed : [];
    } catch (e) {
      return [];
    }
  }

  // Read-modify-write of this page's own checks: other tabs' entries are left as they are.
  function persist() {
    try {
      const now = Date.now();
      const mine = [];
      for (const { check } of active.values()) {
        if (check.persisted) mine.push(Object.assign(check, { touched: now }));
      }
      const others = loadStored().filter(
        (c) =>
          c &&
          !active.has(c.id) &&
          !forgotten.has(c.id) &&
          now < c.started + 1000 * c.checkpoints[c.checkpoints.length - 1] + STALE_OWNER_MS,
      );
      const kept = mine.concat(others).slice(0, MAX_STORED);
      if (kept.length) global.localStorage.setItem(STORE_KEY, JSON.stringify(kept));
      else global.localStorage.removeItem(STORE_KEY);
    } catch (e) {
      // Storage full or blocked (private mode): checks still run while the page stays.
    }
  }

  function storedRoom(text) {
    const stored = loadStored().filter((c) => c && !active.has(c.id) && !forgotten.has(c.id));
    let count = stored.length;
    let chars = stored.reduce((sum, c) => sum + String(c.text).length, 0);
    for (const { check } of active.values()) {
      if (check.persisted) {
        count += 1;
        chars += check.text.length;
      }
    }
    return count < MAX_STORED && chars + text.length <= MAX_STORED_CHARS;
  }

  function due(check) {
    const offset = check.probing ? check.revertWindow : check.checkpoints[check.next];
    return check.started + 1000 * offset;
  }

  function schedule() {
    if (timer !== null) clearTimeout(timer);
    timer = null;
    let soonest = Infinity;
    for (const { check } of active.values()) soonest = Math.min(soonest, due(check));
    if (soonest === Infinity) return;
    // Background tabs throttle timers (to once a minute, at worst): visibilitychange and
    // pageshow catch up on whatever fell due meanwhile.
    timer = setTimeout(tick, Math.max(0, Math.min(soonest - Date.now(), 2147483647)));
  }

  function readNow(read) {
    try {
      const value = read();
      if (typeof value === "string") return value;
      if (value !== null && value !== undefined) console.warn("kept: the current text is not a string");
    } catch (e) {
      console.warn("kept: reading the current text failed:", e && e.message);
    }
    return null;
  }

  function sendSurvival(check, index, score) {
    const event = {
      type: "survival",
      event_id: check.eventIds[index],
      ts: new Date().toISOString(),
      generation_id: check.generationId,
      user_id: check.userId,
      session_id: check.sessionId,
      checkpoint_s: check.checkpoints[index],
      score,
    };
    const events = [event];
    if (check.reverted) {
      // The guard: the text was gone seconds after the accept and still is.
      events.push({
        type: "action",
        name: "revert",
        event_id: check.eventIds[check.checkpoints.length],
        ts: event.ts,
        generation_id: check.generationId,
        user_id: check.userId,
        session_id: check.sessionId,
      });
    }
    return post(check.url, JSON.stringify({ token: check.token, events }))
      .catch(() => false)
      .then((ok) => {
        stats[ok ? "sent" : "refused"] += 1;
        return ok;
      });
  }

  function runCheck(entry, now) {
    const { check, read } = entry;
    while (active.has(check.id) && due(check) <= now) {
      const current = readNow(read);
      if (check.probing) {
        check.probing = false;
        check.goneAtProbe = current !== null && survivalScore(check.text, current) === 0;
        continue;
      }
      const index = check.next;
      check.next += 1;
      if (current === null) {
        stats.skipped += 1; // as Python's tracker does with None: no event
      } else {
        const score = survivalScore(check.text, current);
        check.reverted = check.goneAtProbe && index === 0 && score === 0;
        const sent = sendSurvival(check, index, score);
        entry.results.push(sent.then((ok) => ({ checkpoint_s: check.checkpoints[index], score, ok, reverted: check.reverted })));
        if (check.reverted) {
          stats.reverted += 1;
          check.next = check.checkpoints.length; // a reverted suggestion is not tracked on
        }
      }
      if (check.next >= check.checkpoints.length) {
        active.delete(check.id);
        forgotten.add(check.id);
        Promise.all(entry.results).then(entry.finish);
      }
    }
  }

  function tick() {
    timer = null;
    const now = Date.now();
    for (const entry of Array.from(active.values())) {
      try {
        runCheck(entry, now);
      } catch (e) {
        console.warn("kept: survival check failed:", e && e.message);
        active.delete(entry.check.id);
        forgotten.add(entry.check.id);
      }
    }
    persist();
    schedule();
  }

  function start(check, read) {
    let finish;
    const done = new Promise((resolve) => (finish = resolve));
    active.set(check.id, { check, read, results: [], finish });
    return done;
  }

  function listen() {
    if (listen.done || !global.document) return;
    listen.done = true;
    global.document.addEventListener("visibilitychange", () => {
      if (global.document.visibilityState === "visible") tick();
      else persist();
    });
    global.addEventListener("pageshow", tick);
    // Closing or reloading hands this page's checks over to the next load.
    global.addEventListener("pagehide", () => {
      for (const { check } of active.values()) check.owner = null;
      persist();
    });
  }

  function track(base, source, options) {
    const opts = options || {};
    const read = reader(source);
    const text = opts.text !== undefined ? String(opts.text) : readNow(read);
    if (text === null) throw new TypeError("kept: trackSurvival found no text to track");
    const checkpoints = Array.from(new Set((opts.checkpoints || DEFAULT_CHECKPOINTS).map(Number))).sort((a, b) => a - b);
    if (!checkpoints.length || !checkpoints.every((c) => Number.isInteger(c) && c > 0 && c <= 30 * 86400)) {
      throw new RangeError("kept: survival checkpoints must be positive whole seconds");
    }
    const revertWindow = opts.revertWindow === undefined ? REVERT_WINDOW_S : Number(opts.revertWindow);
    const check = Object.assign({}, base, {
      id: uuid(),
      owner: pageId,
      text,
      key: opts.key === undefined ? null : String(opts.key),
      started: Date.now(),
      checkpoints,
      eventIds: checkpoints.concat([0]).map(() => uuid()),
      next: 0,
      revertWindow,
      probing: revertWindow > 0 && revertWindow < checkpoints[0],
      goneAtProbe: false,
      reverted: false,
    });
    const last = check.started + 1000 * checkpoints[checkpoints.length - 1];
    if (base.expiresAt && base.expiresAt < last) {
      console.warn("kept: the feedback token expires before the last survival checkpoint");
    }
    check.persisted = storedRoom(text);
    if (!check.persisted) stats.notPersisted += 1;
    listen();
    const done = start(check, read);
    persist();
    schedule();
    return { id: check.id, persisted: check.persisted, done, stop: () => stopCheck(check.id) };
  }

  function stopCheck(id) {
    const entry = active.get(id);
    if (!entry) return;
    active.delete(id);
    forgotten.add(id);
    Promise.all(entry.results).then(entry.finish);
    persist();
    schedule();
  }

  /**
   * Resume the survival checks a previous load of this origin left in localStorage.
   * resolve(generationId, key) returns where the text is now (function, field, element),
   * or null when it is gone: that check's remaining checkpoints are then dropped without
   * events, as the Python tracker does when current_text returns None. Checkpoints that
   * fell due while no page ran are read at once. Returns { resumed, gone, done }.
   */
  function resumeSurvival(resolve) {
    const now = Date.now();
    let resumed = 0;
    let gone = 0;
    const finished = [];
    for (const stored of loadStored()) {
      if (!stored || active.has(stored.id)) continue;
      const ownerAlive = stored.owner && stored.owner !== pageId && now < (stored.touched || 0) + STALE_OWNER_MS;
      if (ownerAlive) continue; // another open tab tracks it
      let read = null;
      try {
        const source = resolve ? resolve(stored.generationId, stored.key) : null;
        if (source !== null && source !== undefined) read = reader(source);
      } catch (e) {
        read = null; // a resolver that fails or names no text: the text is gone
      }
      if (read === null) {
        gone += 1;
        stats.gone += 1;
        forgotten.add(stored.id); // dropped by the persist below
        continue;
      }
      const check = Object.assign(stored, { owner: pageId });
      finished.push(start(check, read));
      resumed += 1;
    }
    listen();
    tick();
    return { resumed, gone, done: Promise.all(finished) };
  }

  /**
   * Feedback for the generation a token names.
   * options: token (required), endpoint (default: where sdk.js was loaded from),
   * generationId (default: read from the token), userId, sessionId.
   */
  function feedback(options) {
    const opts = options || {};
    const token = String(opts.token || "");
    const claimed = claims(token);
    const endpoint = opts.endpoint ? String(opts.endpoint).replace(/\/*$/, "/") : scriptBase;
    const url = new URL("v1/feedback", endpoint || global.location.origin + "/").href;
    const generationId = opts.generationId || claimed.g;

    function send(fields) {
      try {
        // Undefined fields vanish in JSON.stringify, so optional ones need no checks.
        const event = Object.assign(
          {
            event_id: uuid(),
            ts: new Date().toISOString(),
            generation_id: generationId,
            user_id: opts.userId,
            session_id: opts.sessionId,
          },
          fields,
        );
        return post(url, JSON.stringify({ token, events: [event] })).catch(() => false);
      } catch (e) {
        return Promise.resolve(false);
      }
    }

    const base = {
      url,
      token,
      generationId,
      userId: opts.userId,
      sessionId: opts.sessionId,
      expiresAt: claimed.e ? claimed.e * 1000 : null,
    };
    const action = (name, extra) => send({ type: "action", name, value: (extra || {}).value });
    return {
      generationId,
      expiresAt: claimed.e ? new Date(claimed.e * 1000) : null,
      /** Thumbs up (1) or down (-1); the latest vote counts. */
      vote: (value, extra) => send({ type: "vote", value, comment: (extra || {}).comment }),
      /** Any action by name; accept and copy count as acceptance by default. */
      action,
      accept: () => action("accept"),
      copy: () => action("copy"),
      regenerate: () => action("regenerate"),
      dismiss: () => action("dismiss"),
      /** The text the user ended up with; the latest correction counts. */
      correct: (text) => send({ type: "correction", text: String(text) }),
      /** A named judgement, by a human unless extra.source says otherwise. */
      score: (name, value, extra) =>
        send({
          type: "score",
          name,
          value,
          source: (extra || {}).source || "human",
          comment: (extra || {}).comment,
        }),
      /**
       * Survival of accepted text: source is a function returning the current text, a
       * textarea/input, or an element (contenteditable); options.text is the accepted text
       * (default: what source holds now), options.checkpoints seconds (default 30, 120,
       * 300, 600, 900), options.key names the place for kept.resumeSurvival. Returns
       * { id, persisted, done, stop }; done resolves to one result per checkpoint read.
       */
      trackSurvival: (source, options) => track(base, source, options),
    };
  }

  global.kept = Object.assign(global.kept || {}, {
    feedback,
    resumeSurvival,
    survivalScore,
    survivalStats: stats,
    tokens,
  });
})(typeof window !== "undefined" ? window : globalThis);
