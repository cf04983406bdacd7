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

  /**
   * Feedback for the generation a token names.
   * options: token (required), endpoint (default: where sdk.js was loaded from),
   * generationId (default: read from the token), userId, sessionId.
   */
  function feedback(options) {
    const opts = options || {};
    const token = String(opts.token || "");
    const claimed = claims(token);
    const base = opts.endpoint ? String(opts.endpoint).replace(/\/*$/, "/") : scriptBase;
    const url = new URL("v1/feedback", base || global.location.origin + "/").href;
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
    };
  }

  global.kept = Object.assign(global.kept || {}, { feedback });
})(typeof window !== "undefined" ? window : globalThis);
