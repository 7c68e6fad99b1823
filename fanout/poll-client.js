/*
 * poll-client.js — the browser client of poll-fanout.
 *
 *   const client = new PollClient({ token: optionalJwt });
 *   client.subscribe(42, (state, message) => render(state));
 *   client.onconnection = (mode) => ...;   // "websocket", "sse", "polling", "reconnecting"
 *
 * Applies a message only when its version is higher than the last one
 * applied (counts are absolute), reconnects with exponential backoff and
 * resubscribes with the last versions.  Falls back to Server-Sent Events,
 * then to short polling of GET /polls/ID, when WebSockets do not get through.
 *
 * A plain browser script (window.PollClient).  It loads in Node too
 * (module.exports), where the transports are passed in:
 *
 *   const client = new PollClient({ base: "http://127.0.0.1:8080",
 *     WebSocket: require("ws"), EventSource: require("eventsource").EventSource });
 *
 * opts.WebSocket, opts.EventSource and opts.fetch default to the global ones.
 *
 * Votes (the daemon records them; identity and segment come from the token):
 *
 *   client.anonymousVoter().then(token => ...);  // with --anonymous-votes: a voter token from
 *                                                 // POST /voters, kept in opts.storage
 *   client.vote(42, 2).then(voted => ..., err => ...);         // single choice
 *   client.vote(42, [1, 3]);                                   // multi choice
 *   client.retract(42);
 *   client.ballot(42).then(options => ...);     // GET /polls/42/vote: [] when none
 *   client.setToken(jwt);                       // another token (sent as "auth" when connected)
 *
 * vote() and retract() return promises that settle on the daemon's answer:
 * they resolve with the `voted` message ({type, poll, ref, result, options};
 * result is cast, changed, unchanged, retracted or none) and reject with an
 * Error carrying code (not_found, forbidden, rate_limited, closed, ...),
 * message, poll and ref.  Each vote gets a unique `ref`.  A vote not yet
 * answered when the connection drops is resent, in order, once the client
 * has reconnected: the daemon applies votes of one connection in order, and
 * the same vote again is `unchanged`, so a resent vote that had in fact been
 * recorded resolves with `unchanged` (or `none` for a retraction); several
 * unanswered votes are replayed in order, so the last one sent wins.  Without
 * a WebSocket (the SSE and polling fallbacks) votes go, one at a time, to
 * POST and DELETE /polls/ID/vote, retried after a network failure.
 * close() rejects unanswered votes with code "client_closed".
 *
 * anonymousVoter() resolves with the voter token kept in opts.storage (an
 * object with getItem and setItem: localStorage by default in browsers) under
 * opts.storageKey ("poll-voter-token"), or asks POST /voters for a new one
 * and keeps it, so that a reader keeps one identity across reloads; it
 * becomes the client's token.  It rejects with code "not_found" when the
 * daemon does not hand out anonymous tokens.  The client has one token, for
 * reads and votes: an anonymous token grants votes only, so on a daemon with
 * --jwt-secret-file pass an application token that grants both instead.
 */
(function (global) {
  "use strict";

  function PollClient(opts) {
    opts = opts || {};
    var loc = global.location;
    this.base = (opts.base || (loc.protocol + "//" + loc.host)).replace(/\/$/, "");
    this.token = opts.token || null;
    this.polls = {};          /* id -> { state, listeners } */
    this.ws = null;
    this.mode = null;
    this.backoff = 0;
    this.failures = 0;        /* WebSocket attempts that never opened */
    this.everOpened = false;
    this.closed = false;
    this.onconnection = null;
    this.sources = {};        /* SSE fallback: id -> EventSource */
    this.timers = {};         /* polling fallback: id -> timer */
    this.forceMode = opts.transport || null;   /* "websocket" | "sse" | "polling" */
    this.WebSocket = opts.WebSocket || global.WebSocket;
    this.EventSource = opts.EventSource || global.EventSource;
    this.fetch = opts.fetch || (global.fetch && global.fetch.bind(global));
    this.storage = opts.storage !== undefined ? opts.storage : defaultStorage();
    this.storageKey = opts.storageKey || "poll-voter-token";
    this.votes = [];          /* unanswered votes, in the order sent: { msg, resolve, reject, sent } */
    this.refPrefix = randomId();
    this.refCount = 0;
    this.httpVoting = false;  /* a vote is on its way over HTTP (fallback modes) */
    var self = this;
    /* after the caller has set onconnection and subscribed */
    setTimeout(function () { self._connect(); }, 0);
  }

  function defaultStorage() {
    try { return global.localStorage || null; } catch (e) { return null; }   /* blocked storage throws */
  }

  function randomId() {
    var c = global.crypto, out = "";
    if (c && c.getRandomValues) {
      var a = new Uint8Array(6);
      c.getRandomValues(a);
      for (var i = 0; i < a.length; i++) out += (a[i] < 16 ? "0" : "") + a[i].toString(16);
      return out;
    }
    return Math.random().toString(16).slice(2, 14);
  }

  function voteError(m) {
    var e = new Error(m.message || m.code || "vote failed");
    e.code = m.code;
    e.poll = m.poll;
    e.ref = m.ref;
    return e;
  }

  PollClient.prototype._setMode = function (mode) {
    this.mode = mode;
    if (this.onconnection) this.onconnection(mode);
  };

  PollClient.prototype.subscribe = function (id, listener) {
    id = Number(id);
    var p = this.polls[id];
    if (!p) p = this.polls[id] = { state: null, listeners: [] };
    if (listener) p.listeners.push(listener);
    this._sendSubscribe(id);
    if (this.mode === "sse") this._sse(id);
    if (this.mode === "polling") this._poll(id);
    return p.state;
  };

  PollClient.prototype.unsubscribe = function (id) {
    id = Number(id);
    delete this.polls[id];
    if (this.ws && this.ws.readyState === 1)
      this.ws.send(JSON.stringify({ type: "unsubscribe", poll: id }));
    if (this.sources[id]) { this.sources[id].close(); delete this.sources[id]; }
    if (this.timers[id]) { clearTimeout(this.timers[id]); delete this.timers[id]; }
  };

  PollClient.prototype.state = function (id) {
    var p = this.polls[Number(id)];
    return p ? p.state : null;
  };

  PollClient.prototype.close = function () {
    this.closed = true;
    if (this.ws) this.ws.close();
    for (var id in this.sources) this.sources[id].close();
    for (var t in this.timers) clearTimeout(this.timers[t]);
    var votes = this.votes;
    this.votes = [];
    votes.forEach(function (v) {
      v.reject(voteError({ code: "client_closed", message: "the client was closed before an answer",
                           poll: v.msg.poll, ref: v.msg.ref }));
    });
  };

  /* ---- votes ---- */

  PollClient.prototype.vote = function (poll, optionOrOptions) {
    var msg = { type: "vote", poll: Number(poll) };
    if (Array.isArray(optionOrOptions)) msg.options = optionOrOptions.map(Number);
    else msg.option = Number(optionOrOptions);
    return this._queueVote(msg);
  };

  PollClient.prototype.retract = function (poll) {
    return this._queueVote({ type: "retract", poll: Number(poll) });
  };

  PollClient.prototype._queueVote = function (msg) {
    var self = this;
    msg.ref = this.refPrefix + "-" + (++this.refCount);
    return new Promise(function (resolve, reject) {
      if (self.closed) return reject(voteError({ code: "client_closed", message: "the client is closed",
                                                  poll: msg.poll, ref: msg.ref }));
      self.votes.push({ msg: msg, resolve: resolve, reject: reject, sent: false });
      self._flushVotes();
    });
  };

  /* sends what is not sent yet: over the WebSocket when open, else over HTTP in the fallbacks */
  PollClient.prototype._flushVotes = function () {
    if (this.ws && this.ws.readyState === 1) {
      for (var i = 0; i < this.votes.length; i++) {
        var v = this.votes[i];
        if (!v.sent) { v.sent = true; this.ws.send(JSON.stringify(v.msg)); }
      }
    } else if (this.mode === "sse" || this.mode === "polling") {
      this._httpVote();
    }
  };

  /* a `voted` or `error` answering one of our votes: settles it */
  PollClient.prototype._answer = function (m) {
    for (var i = 0; i < this.votes.length; i++) {
      var v = this.votes[i];
      if (v.msg.ref !== m.ref) continue;
      this.votes.splice(i, 1);
      if (m.type === "voted") v.resolve(m);
      else v.reject(voteError(m));
      return true;
    }
    return false;
  };

  PollClient.prototype._headers = function (json) {
    var h = {};
    if (this.token) h.Authorization = "Bearer " + this.token;
    if (json) h["Content-Type"] = "application/json";
    return h;
  };

  /* the fallbacks: the oldest vote over HTTP, then the next, so that they apply in order */
  PollClient.prototype._httpVote = function () {
    var self = this;
    if (this.httpVoting || !this.votes.length || this.closed || !this.fetch) return;
    var v = this.votes[0], msg = v.msg, body = null;
    if (msg.type === "vote")
      body = JSON.stringify(msg.options ? { options: msg.options } : { option: msg.option });
    this.httpVoting = true;
    v.sent = true;
    this.fetch(this.base + "/polls/" + msg.poll + "/vote",
               { method: msg.type === "vote" ? "POST" : "DELETE", headers: this._headers(!!body),
                 body: body, cache: "no-store" })
      .then(function (r) { return r.json(); })
      .then(function (m) {
        self.httpVoting = false;
        if (!m || (m.type !== "voted" && m.type !== "error")) throw new Error("unexpected answer");
        m.ref = msg.ref;
        if (m.poll === undefined) m.poll = msg.poll;
        self._answer(m);
        self.backoff = 0;
        self._flushVotes();
      })
      .catch(function () {
        /* no answer: the vote may or may not be recorded; resending it is safe */
        self.httpVoting = false;
        v.sent = false;
        setTimeout(function () { self._flushVotes(); }, self._retryDelay());
      });
  };

  /* ---- the voter's token ---- */

  PollClient.prototype.setToken = function (token) {
    this.token = token || null;
    if (this.token && this.ws && this.ws.readyState === 1)
      this.ws.send(JSON.stringify({ type: "auth", token: this.token }));
  };

  PollClient.prototype.anonymousVoter = function () {
    var self = this, kept = null;
    try { kept = this.storage ? this.storage.getItem(this.storageKey) : null; } catch (e) { kept = null; }
    if (kept) {
      this.setToken(kept);
      return Promise.resolve(kept);
    }
    return this.fetch(this.base + "/voters", { method: "POST", cache: "no-store" })
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (m) {
          if (r.ok && m && typeof m.token === "string") return m.token;
          throw voteError({ code: (m && m.code) || (r.status === 404 ? "not_found" : "unavailable"),
                            message: (m && m.message) ||
                              (r.status === 404 ? "this server hands out no anonymous voter tokens"
                                                : "POST /voters answered " + r.status) });
        });
      })
      .then(function (token) {
        try { if (self.storage) self.storage.setItem(self.storageKey, token); } catch (e) { /* not kept */ }
        self.setToken(token);
        return token;
      });
  };

  /* the voter's live ballot: its options, ascending ([] when none) */
  PollClient.prototype.ballot = function (poll) {
    return this.fetch(this.base + "/polls/" + Number(poll) + "/vote",
                      { headers: this._headers(false), cache: "no-store" })
      .then(function (r) { return r.json(); })
      .then(function (m) {
        if (m && m.type === "ballot" && Array.isArray(m.options)) return m.options;
        throw voteError(m && m.type === "error" ? m : { code: "bad_request", message: "unexpected answer",
                                                        poll: Number(poll) });
      });
  };

  /* the one place a message changes state: by version, never backwards */
  PollClient.prototype.apply = function (m) {
    if (!m || typeof m !== "object") return false;
    if (m.type === "error") {
      var pe = this.polls[m.poll];
      if (pe) pe.listeners.forEach(function (l) { l(pe.state, m); });
      return false;
    }
    var p = this.polls[m.poll];
    if (!p || typeof m.version !== "number") return false;
    var s = p.state;
    if (s && m.version <= s.version) return false;
    if (m.type === "snapshot") {
      s = {
        poll: m.poll, version: m.version, status: m.status, title: m.title,
        ballots: m.ballots,
        options: m.options.map(function (o) { return { id: o.id, label: o.label, votes: o.votes }; })
      };
      /* the poll's kind, when the daemon says it: a page offers checkboxes for "multi" */
      if (m.kind !== undefined) s.kind = m.kind;
      if (m.max_choices !== undefined) s.max_choices = m.max_choices;
    } else if (!s) {
      return false;        /* a delta before any snapshot: wait for one */
    } else if (m.type === "tally") {
      s.version = m.version;
      s.ballots = m.ballots;
      m.options.forEach(function (o) {
        for (var i = 0; i < s.options.length; i++)
          if (s.options[i].id === o.id) s.options[i].votes = o.votes;
      });
    } else if (m.type === "status") {
      s.version = m.version;
      s.status = m.status;
    } else {
      return false;
    }
    p.state = s;
    p.listeners.forEach(function (l) { l(s, m); });
    return true;
  };

  PollClient.prototype._sendSubscribe = function (id) {
    if (!this.ws || this.ws.readyState !== 1) return;
    var msg = { type: "subscribe", poll: id };
    var s = this.polls[id] && this.polls[id].state;
    if (s) msg.version = s.version;
    this.ws.send(JSON.stringify(msg));
  };

  PollClient.prototype._retryDelay = function () {
    this.backoff = Math.min(this.backoff ? this.backoff * 2 : 500, 30000);
    return this.backoff / 2 + Math.random() * this.backoff / 2;
  };

  PollClient.prototype._connect = function () {
    var self = this;
    if (this.closed) return;
    if (this.forceMode === "sse" || (!this.forceMode && !this.WebSocket)) return this._fallback();
    if (this.forceMode === "polling") return this._fallback();
    var url = this.base.replace(/^http/, "ws") + "/ws";
    if (this.token) url += "?token=" + encodeURIComponent(this.token);
    var ws;
    try { ws = new this.WebSocket(url); } catch (e) { return this._fallback(); }
    this.ws = ws;
    var urlToken = this.token;
    ws.onopen = function () {
      self.backoff = 0;
      self.failures = 0;
      self.everOpened = true;
      self._setMode("websocket");
      /* a token that came while the connection was being opened */
      if (self.token && self.token !== urlToken) ws.send(JSON.stringify({ type: "auth", token: self.token }));
      for (var id in self.polls) self._sendSubscribe(Number(id));
      /* unanswered votes of the last connection: again, in order */
      self.votes.forEach(function (v) { v.sent = false; });
      self._flushVotes();
    };
    ws.onmessage = function (ev) {
      var m;
      try { m = JSON.parse(ev.data); } catch (e) { return; }
      if (m && m.ref !== undefined && (m.type === "voted" || m.type === "error") && self._answer(m)) return;
      self.apply(m);
    };
    ws.onclose = function () {
      if (self.ws !== ws || self.closed) return;
      self.ws = null;
      self.votes.forEach(function (v) { v.sent = false; });
      if (!self.everOpened && ++self.failures >= 3 && !self.forceMode) return self._fallback();
      self._setMode("reconnecting");
      setTimeout(function () { self._connect(); }, self._retryDelay());
    };
  };

  /* WebSockets do not get through: one EventSource per poll, else polling */
  PollClient.prototype._fallback = function () {
    var useSse = this.forceMode !== "polling" && !!this.EventSource;
    this._setMode(useSse ? "sse" : "polling");
    for (var id in this.polls) useSse ? this._sse(Number(id)) : this._poll(Number(id));
    this._flushVotes();
  };

  PollClient.prototype._sse = function (id) {
    var self = this;
    if (this.sources[id]) return;
    var url = this.base + "/polls/" + id + "/events";
    if (this.token) url += "?token=" + encodeURIComponent(this.token);
    var es = new this.EventSource(url);
    this.sources[id] = es;
    es.onmessage = function (ev) {
      try { self.apply(JSON.parse(ev.data)); } catch (e) { /* ignore */ }
    };
    /* EventSource reconnects by itself; the server resends a snapshot */
  };

  PollClient.prototype._poll = function (id) {
    var self = this;
    if (this.timers[id] === null || !this.polls[id] || this.closed) return;
    this.timers[id] = null;
    var headers = this.token ? { Authorization: "Bearer " + this.token } : {};
    this.fetch(this.base + "/polls/" + id, { headers: headers, cache: "no-store" })
      .then(function (r) { return r.json(); })
      .then(function (m) { self.apply(m); self.backoff = 0; return 2000; },
            function () { return self._retryDelay(); })
      .then(function (delay) {
        if (self.polls[id] && !self.closed)
          self.timers[id] = setTimeout(function () { delete self.timers[id]; self._poll(id); }, delay);
      });
  };

  global.PollClient = PollClient;
  if (typeof module !== "undefined" && module.exports) module.exports = PollClient;
})(typeof window !== "undefined" ? window : globalThis);
