/*
 * poll-widget.js — a live poll in any page, on any origin:
 *
 *   <div data-poll="42"></div>
 *   <script src="https://HOST/poll-widget.js" async></script>
 *
 * Served as one script with poll-client.js before it (GET /poll-widget.js),
 * whose PollClient it uses: every widget of the page shares one client, so
 * one connection (one per distinct data-token).  Each widget renders into
 * a shadow root (the page's styles do not reach it, its own do not leak),
 * themed by the CSS custom properties --poll-accent, --poll-font,
 * --poll-radius, --poll-bg and --poll-fg set on the div or above it.
 *
 * Attributes of the div: data-poll (the id), data-token (a token that may
 * read and vote; without it, reads are anonymous and votes use an anonymous
 * voter token from POST /voters, kept in localStorage: PollClient's
 * anonymousVoter()), data-kind="multi" (checkboxes and a submit, also taken
 * from the snapshot's kind when the daemon sends one).  Votes go through
 * the client's vote(): a WebSocket `vote` message, answered by `voted`.
 *
 * Accessible: one button per option, named by its label, its count as its
 * description, the reader's own choice aria-pressed; keyboard operable
 * (Tab, Enter, Space); counts announced politely (aria-live), at most every
 * few seconds.
 */
(function () {
  "use strict";
  var PollClient = window.PollClient;
  var script = document.currentScript;
  var base = (script && script.src ? new URL(script.src, location.href) : location).origin;
  var clients = {};           /* token ("" for none) -> PollClient */
  var mounted = typeof WeakSet === "function" ? new WeakSet() : null;
  var seq = 0;
  var ANNOUNCE_MS = 4000;

  var CSS = [
    ":host { display: block; }",
    ".poll { font-family: var(--poll-font, system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif);",
    "  background: var(--poll-bg, #ffffff); color: var(--poll-fg, #1b1d21);",
    "  border: 1px solid color-mix(in srgb, var(--poll-fg, #1b1d21) 18%, transparent);",
    "  border-radius: var(--poll-radius, 10px); padding: 0.9em 1em; font-size: 15px; line-height: 1.35;",
    "  max-width: 32rem; box-sizing: border-box; }",
    ".q { font-weight: 650; font-size: 1.1em; margin: 0 0 0.2em; overflow-wrap: anywhere; }",
    ".st { margin: 0 0 0.7em; font-size: 0.88em; }",
    "ul { list-style: none; margin: 0; padding: 0; }",
    "li { margin: 0 0 0.45em; }",
    ".opt { all: unset; box-sizing: border-box; display: block; width: 100%; cursor: pointer;",
    "  border: 1px solid color-mix(in srgb, var(--poll-fg, #1b1d21) 25%, transparent);",
    "  border-radius: var(--poll-radius, 10px); padding: 0.45em 0.65em; position: relative; overflow: hidden; }",
    ".opt:hover { border-color: var(--poll-accent, #2f5fd0); }",
    ".opt:focus-visible { outline: 3px solid var(--poll-accent, #2f5fd0); outline-offset: 2px; }",
    ".opt[aria-pressed=true] { border: 2px solid var(--poll-accent, #2f5fd0); padding: calc(0.45em - 1px) calc(0.65em - 1px); }",
    ".opt[aria-disabled=true] { cursor: default; }",
    ".row { display: flex; justify-content: space-between; gap: 0.5em; position: relative; }",
    ".lbl { overflow-wrap: anywhere; }",
    ".cnt { white-space: nowrap; font-variant-numeric: tabular-nums; }",
    ".mine { font-size: 0.85em; font-weight: 600; }",
    ".track { height: 0.4em; margin-top: 0.35em; border-radius: 999px; position: relative;",
    "  background: color-mix(in srgb, var(--poll-fg, #1b1d21) 10%, transparent); overflow: hidden; }",
    ".fill { position: absolute; left: 0; top: 0; bottom: 0; width: 0; border-radius: 999px;",
    "  background: var(--poll-accent, #2f5fd0); transition: width 0.35s ease; }",
    "label.opt { display: block; }",
    "label.opt input { margin: 0 0.5em 0 0; accent-color: var(--poll-accent, #2f5fd0); }",
    ".submit { font: inherit; margin-top: 0.3em; padding: 0.4em 1em; border: 0; cursor: pointer;",
    "  border-radius: var(--poll-radius, 10px); background: var(--poll-accent, #2f5fd0); color: #fff; }",
    ".submit:focus-visible { outline: 3px solid var(--poll-fg, #1b1d21); outline-offset: 2px; }",
    ".submit[disabled] { opacity: 0.6; cursor: default; }",
    ".foot { display: flex; flex-wrap: wrap; justify-content: space-between; gap: 0.5em;",
    "  margin: 0.6em 0 0; font-size: 0.88em; }",
    ".err { color: #b00020; }",
    ".sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }"
  ].join("\n");

  var STORAGE_KEY = "poll-widget-voter:" + base;

  function storage() {
    try { return window.localStorage; } catch (e) { return null; }   /* blocked: kept for this page only */
  }

  /* one client per token: the widgets that share it share its connection */
  function clientFor(token) {
    var key = token || "";
    if (!clients[key])
      clients[key] = new PollClient({ base: base, token: token || undefined, storage: token ? null : storage(),
                                      storageKey: STORAGE_KEY });
    return clients[key];
  }

  /* the anonymous voter token of this browser for this daemon: kept, or from POST /voters once */
  function anonToken(client) {
    if (!client.voterPromise) {
      client.voterPromise = client.anonymousVoter();
      client.voterPromise.catch(function () { client.voterPromise = null; });
    }
    return client.voterPromise;
  }

  function keptToken() {
    var st = storage();
    try { return st ? st.getItem(STORAGE_KEY) : null; } catch (e) { return null; }
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }

  function Widget(host) {
    this.host = host;
    this.id = Number(host.getAttribute("data-poll"));
    this.token = host.getAttribute("data-token") || null;
    this.multi = host.getAttribute("data-kind") === "multi";
    this.uid = "pw" + (++seq);
    this.mine = [];
    this.state = null;
    this.busy = false;
    this.lastAnnounce = 0;
    this.announceTimer = null;
    this.root = host.attachShadow ? host.attachShadow({ mode: "open" }) : host;
    var style = el("style");
    style.textContent = CSS;
    this.box = el("div", "poll");
    this.box.setAttribute("role", "group");
    this.title = el("p", "q", "Loading poll…");
    this.title.id = this.uid + "-q";
    this.box.setAttribute("aria-labelledby", this.title.id);
    this.status = el("p", "st", "");
    this.list = el("ul");
    this.foot = el("p", "foot");
    this.total = el("span", "total", "");
    this.msg = el("span", "msg", "");
    this.msg.setAttribute("role", "status");
    this.live = el("div", "sr");
    this.live.setAttribute("aria-live", "polite");
    this.foot.appendChild(this.total);
    this.foot.appendChild(this.msg);
    this.box.appendChild(this.title);
    this.box.appendChild(this.status);
    this.box.appendChild(this.list);
    this.box.appendChild(this.foot);
    this.box.appendChild(this.live);
    this.root.appendChild(style);
    this.root.appendChild(this.box);
    if (!(this.id > 0)) { this.title.textContent = "No poll id (data-poll)"; return; }
    var self = this;
    this.client = clientFor(this.token);
    this.client.subscribe(this.id, function (s, m) { self.update(s, m); });
    this.loadMine();
  }

  /* the voter's token on the client: the page's, else the anonymous one */
  Widget.prototype.voter = function () {
    return this.token ? Promise.resolve(this.token) : anonToken(this.client);
  };

  /* the reader's own ballot (only once a voter token exists: without one, no ballot) */
  Widget.prototype.loadMine = function () {
    var self = this;
    if (!this.token && !keptToken()) return;
    this.voter().then(function () { return self.client.ballot(self.id); })
      .then(function (options) { self.mine = options; self.render(); },
            function () { /* not known: nothing marked */ });
  };

  Widget.prototype.update = function (s, m) {
    if (m && m.type === "error") {
      if (m.code === "not_found") this.title.textContent = "This poll does not exist.";
      else this.say(m.message, true);
      return;
    }
    var first = !this.state;
    this.state = s;
    if (s && s.kind === "multi") this.multi = true;
    this.render();
    if (!first) this.announce();
  };

  Widget.prototype.open = function () { return this.state && this.state.status === "open"; };

  Widget.prototype.render = function () {
    var s = this.state, self = this;
    if (!s) return;
    this.title.textContent = s.title;
    this.status.textContent = s.status === "open" ? (this.mine.length ? "You voted. You can change your vote." :
                                                     "Choose " + (this.multi ? "one or more options." : "an option."))
      : s.status === "scheduled" ? "This poll is not open yet." : "This poll is closed. Final results:";
    this.total.textContent = s.ballots + (s.ballots === 1 ? " vote" : " votes");
    this.box.setAttribute("data-status", s.status);
    this.box.setAttribute("data-version", s.version);
    var mode = this.multi ? "multi" : "single";
    if (this.list.getAttribute("data-mode") !== mode || this.list.children.length !== s.options.length) {
      this.list.innerHTML = "";
      this.list.setAttribute("data-mode", mode);
      s.options.forEach(function (o) { self.list.appendChild(self.option(o)); });
      if (this.multi) {
        this.submit = el("button", "submit", "Vote");
        this.submit.type = "button";
        this.submit.addEventListener("click", function () {
          var chosen = [];
          Array.prototype.forEach.call(self.list.querySelectorAll("input:checked"), function (i) {
            chosen.push(Number(i.value));
          });
          if (chosen.length) self.vote(chosen);
          else self.say("Choose at least one option.", true);
        });
        this.box.insertBefore(this.submit, this.foot);
      } else if (this.submit) {
        this.submit.remove();
        this.submit = null;
      }
    }
    s.options.forEach(function (o) {
      var li = self.list.querySelector('[data-option="' + o.id + '"]');
      var share = s.ballots ? Math.round(100 * o.votes / s.ballots) : 0;
      var mine = self.mine.indexOf(o.id) >= 0;
      li.querySelector(".cnt").textContent = o.votes + " · " + share + "%";
      li.querySelector(".fill").style.width = share + "%";
      li.querySelector(".mine").textContent = mine ? "✓ your vote" : "";
      var ctl = li.querySelector(".opt");
      if (self.multi) {
        var box = li.querySelector("input");
        box.disabled = !self.open() || self.busy;
        if (!box.hasAttribute("data-touched")) box.checked = mine;
      } else {
        ctl.setAttribute("aria-pressed", mine ? "true" : "false");
        ctl.setAttribute("aria-disabled", self.open() && !self.busy ? "false" : "true");
      }
    });
    if (this.submit) this.submit.disabled = !this.open() || this.busy;
  };

  Widget.prototype.option = function (o) {
    var self = this;
    var li = el("li");
    li.setAttribute("data-option", o.id);
    var cntId = this.uid + "-c" + o.id;
    var ctl;
    if (this.multi) {
      ctl = el("label", "opt");
      var box = el("input");
      box.type = "checkbox";
      box.value = o.id;
      box.setAttribute("aria-describedby", cntId);
      box.addEventListener("change", function () { box.setAttribute("data-touched", ""); });
      var row = el("span", "row");
      var left = el("span", "lbl");
      left.appendChild(box);
      left.appendChild(document.createTextNode(o.label));
      row.appendChild(left);
      ctl.appendChild(row);
    } else {
      ctl = el("button", "opt");
      ctl.type = "button";
      ctl.setAttribute("aria-describedby", cntId);
      ctl.addEventListener("click", function () {
        if (ctl.getAttribute("aria-disabled") === "true") return;
        self.vote([o.id]);
      });
      row = el("span", "row");
      row.appendChild(el("span", "lbl", o.label));
      ctl.appendChild(row);
    }
    var right = el("span", "cnt");
    right.id = cntId;
    row.appendChild(right);
    var track = el("span", "track");
    track.style.display = "block";
    track.setAttribute("aria-hidden", "true");
    track.appendChild(el("span", "fill"));
    ctl.appendChild(track);
    ctl.appendChild(el("span", "mine"));
    li.appendChild(ctl);
    return li;
  };

  /* counts, politely and not too often */
  Widget.prototype.announce = function () {
    var self = this;
    if (this.announceTimer) return;
    var wait = Math.max(0, this.lastAnnounce + ANNOUNCE_MS - Date.now());
    this.announceTimer = setTimeout(function () {
      self.announceTimer = null;
      self.lastAnnounce = Date.now();
      var s = self.state;
      self.live.textContent = s.options.map(function (o) {
        return o.label + ": " + o.votes + (o.votes === 1 ? " vote" : " votes");
      }).join(", ") + ". " + (s.status === "closed" ? "The poll is closed." : "");
    }, wait);
  };

  Widget.prototype.say = function (text, error) {
    this.msg.textContent = text || "";
    this.msg.className = "msg" + (error ? " err" : "");
  };

  /* a vote, through the shared client (its WebSocket, or HTTP in its fallbacks) */
  Widget.prototype.vote = function (options) {
    var self = this;
    if (!this.open() || this.busy) return;
    this.busy = true;
    this.say("Sending your vote…");
    this.render();
    this.voter().then(function () {
      return self.client.vote(self.id, self.multi ? options : options[0]);
    }).then(function (m) {
      self.mine = m.options || options;
      self.say(m.result === "unchanged" ? "Your vote is unchanged." : "Thank you, your vote is in.");
      Array.prototype.forEach.call(self.list.querySelectorAll("input"), function (i) {
        i.removeAttribute("data-touched");
      });
    }).catch(function (e) {
      self.say("Your vote could not be recorded: " + (e && e.message || e), true);
    }).then(function () {
      self.busy = false;
      self.render();
    });
  };

  function scan() {
    Array.prototype.forEach.call(document.querySelectorAll("[data-poll]"), function (host) {
      if (mounted ? mounted.has(host) : host.getAttribute("data-poll-mounted")) return;
      if (mounted) mounted.add(host); else host.setAttribute("data-poll-mounted", "");
      host.pollWidget = new Widget(host);
    });
  }
  window.PollWidget = { scan: scan };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", scan);
  else scan();
})();
