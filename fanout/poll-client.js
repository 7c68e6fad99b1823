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
    var self = this;
    /* after the caller has set onconnection and subscribed */
    setTimeout(function () { self._connect(); }, 0);
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
    ws.onopen = function () {
      self.backoff = 0;
      self.failures = 0;
      self.everOpened = true;
      self._setMode("websocket");
      for (var id in self.polls) self._sendSubscribe(Number(id));
    };
    ws.onmessage = function (ev) {
      var m;
      try { m = JSON.parse(ev.data); } catch (e) { return; }
      self.apply(m);
    };
    ws.onclose = function () {
      if (self.ws !== ws || self.closed) return;
      self.ws = null;
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
