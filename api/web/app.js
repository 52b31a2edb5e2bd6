// The operator's page: Alpine.js state over the API (same bearer tokens and roles), kept live
// by the API's server-sent events (fed from Kafka). No build step; libraries are vendored.
"use strict";

const API = "/api/v1";
const TOKEN_KEY = "jax.token";
const MAX_ROWS = 200;

function iso(date, endOfDay) {
  if (!date) return null;
  const d = new Date(date + "T00:00:00Z");
  if (endOfDay) d.setUTCDate(d.getUTCDate() + 1);
  return d.toISOString();
}

function csvCell(value) {
  const text = value == null ? "" : String(value);
  return /[",\n]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
}

document.addEventListener("alpine:init", () => {
  Alpine.data("jax", () => ({
    tokenInput: "", token: null, me: null, loginError: "", error: "", live: false,
    pending: [], orders: [], fills: [], positions: [], trades: [], rejections: [], states: [],
    realized: 0, unrealized: 0, points: [[], [], [], []], chart: null,
    filters: { symbol: "", strategy: "", side: "", since: "", until: "", outcome: "" },
    streamAbort: null, timers: {},
    rollout: null, grants: [], ignoredDecisions: [], rolloutError: "",

    get canApprove() { return this.me && (this.me.role === "approver" || this.me.role === "admin"); },
    get accountMode() {
      const account = this.states.find(s => s.scope === "account");
      return account ? account.mode : "active";
    },

    init() {
      const saved = sessionStorage.getItem(TOKEN_KEY);
      if (saved) { this.tokenInput = saved; this.login(); }
    },

    async call(path, options = {}) {
      const headers = { Authorization: "Bearer " + this.token, ...(options.headers || {}) };
      if (options.body) headers["Content-Type"] = "application/json";
      const resp = await fetch(path, { ...options, headers });
      const body = resp.headers.get("content-type")?.includes("json") ? await resp.json() : null;
      if (!resp.ok) {
        if (resp.status === 401) this.logout();
        throw new Error((body && body.detail) || resp.status + " " + resp.statusText);
      }
      return body;
    },

    async login() {
      this.token = this.tokenInput.trim();
      this.loginError = "";
      try {
        this.me = await this.call(API + "/me");
      } catch (e) {
        this.me = null; this.token = null; this.loginError = e.message;
        sessionStorage.removeItem(TOKEN_KEY);
        return;
      }
      sessionStorage.setItem(TOKEN_KEY, this.token);
      await this.loadAll();
      this.openStream();
    },

    logout() {
      sessionStorage.removeItem(TOKEN_KEY);
      if (this.streamAbort) this.streamAbort.abort();
      this.me = null; this.token = null; this.tokenInput = ""; this.live = false;
    },

    async guard(what, work) {
      try { await work(); } catch (e) { this.error = what + ": " + e.message; }
    },

    async loadAll() {
      this.error = "";
      await Promise.all([
        this.loadPending(), this.loadOrders(), this.loadFills(), this.loadStates(),
        this.loadTrades(), this.loadRejections(), this.loadPnl(), this.loadRollout(),
      ]);
    },
    loadPending() {
      return this.guard("signals", async () => {
        this.pending = (await this.call(API + "/signals?status=pending")).items;
      });
    },
    loadOrders() {
      return this.guard("orders", async () => {
        this.orders = (await this.call(API + "/orders?status=all&limit=50")).items;
      });
    },
    loadFills() {
      return this.guard("fills", async () => {
        this.fills = (await this.call(API + "/fills?limit=50")).items;
      });
    },
    loadRejections() {
      return this.guard("rejections", async () => {
        this.rejections = (await this.call(API + "/rejections?limit=50")).items;
      });
    },
    loadStates() {
      return this.guard("kill switch", async () => {
        this.states = await this.call(API + "/kill-switch");
      });
    },
    loadPnl() {
      return this.guard("P&L", async () => {
        const [positions, pnl] = await Promise.all([
          this.call(API + "/positions"), this.call(API + "/pnl?by=day")]);
        this.positions = positions.filter(p => Number(p.quantity) !== 0 || Number(p.venue_quantity || 0) !== 0);
        this.unrealized = positions.reduce((sum, p) => sum + Number(p.unrealized_pnl || 0), 0);
        this.realized = pnl.reduce((sum, r) => sum + Number(r.realized_pnl || 0), 0);
        this.plot();
      });
    },
    async loadRollout() {
      // Its own error line: the rollout gate is read-only and must not hide the desk's errors.
      this.rolloutError = "";
      const [report, grants] = await Promise.allSettled([
        this.call(API + "/rollout/report"), this.call(API + "/rollout/grants")]);
      const failed = [];
      if (report.status === "fulfilled") this.rollout = report.value;
      else failed.push("report: " + report.reason.message);
      if (grants.status === "fulfilled") {
        this.grants = grants.value.grants; this.ignoredDecisions = grants.value.ignored;
      } else failed.push("grants: " + grants.reason.message);
      this.rolloutError = failed.join("; ");
    },
    loadTrades() {
      return this.guard("trades", async () => {
        const f = this.filters, q = new URLSearchParams({ limit: "500" });
        if (f.symbol) q.set("symbol", f.symbol.trim().toUpperCase());
        if (f.strategy) q.set("strategy", f.strategy.trim());
        if (f.since) q.set("since", iso(f.since, false));
        if (f.until) q.set("until", iso(f.until, true));
        if (f.outcome === "win" || f.outcome === "loss") q.set("status", "closed");
        else if (f.outcome) q.set("status", f.outcome);
        let rows = (await this.call(API + "/trades?" + q)).items;
        if (f.side) rows = rows.filter(t => t.direction === f.side);
        if (f.outcome === "win") rows = rows.filter(t => Number(t.realized_pnl) > 0);
        if (f.outcome === "loss") rows = rows.filter(t => Number(t.realized_pnl) <= 0);
        this.trades = rows;
      });
    },

    exportCsv() {
      const columns = ["id", "signal_id", "order_id", "created_at", "symbol", "direction",
        "quantity", "entry_price", "stop_loss", "take_profit", "strategy_id", "approved_by",
        "risk_amount", "risk_percent", "position_value", "rr_ratio", "status", "exit_price",
        "closed_at", "realized_pnl", "commission"];
      const lines = [columns.join(",")].concat(
        this.trades.map(t => columns.map(c => csvCell(t[c])).join(",")));
      const link = document.createElement("a");
      link.href = URL.createObjectURL(new Blob([lines.join("\n") + "\n"], { type: "text/csv" }));
      link.download = "trades.csv";
      link.click();
      URL.revokeObjectURL(link.href);
    },

    async decide(signal, action) {
      const reason = prompt(action === "reject" ? "Why reject " + signal.signal_id + "?"
        : "Approve " + signal.signal_id + " (" + this.qty(signal.size_now?.quantity) + " " +
          signal.symbol + "). Reason (optional):", "");
      if (reason === null) return;
      if (action === "reject" && !reason.trim()) { this.error = "a rejection needs a reason"; return; }
      await this.guard(action, async () => {
        await this.call(`${API}/signals/${encodeURIComponent(signal.signal_id)}/${action}`, {
          method: "POST", body: JSON.stringify(reason.trim() ? { reason: reason.trim() } : {}) });
        this.pending = this.pending.filter(s => s.signal_id !== signal.signal_id);
        this.error = "";
      });
    },

    async command(action) {
      if (action === "flatten" && !confirm("Flatten cancels every open order and closes every " +
          "position at market, then halts. Continue?")) return;
      const reason = prompt(action.toUpperCase() + ": reason", "");
      if (reason === null) return;
      if (!reason.trim()) { this.error = "a kill-switch command needs a reason"; return; }
      await this.guard(action, async () => {
        await this.call(`${API}/kill-switch/${action}`, { method: "POST",
          body: JSON.stringify({ reason: reason.trim(), confirm: action === "flatten" }) });
        this.error = "";
      });
    },

    // --- live updates ------------------------------------------------------------------
    async openStream() {
      if (this.streamAbort) this.streamAbort.abort();
      const abort = new AbortController();
      this.streamAbort = abort;
      try {
        const resp = await fetch(API + "/stream", { signal: abort.signal,
          headers: { Authorization: "Bearer " + this.token, Accept: "text/event-stream" } });
        if (!resp.ok) throw new Error("stream " + resp.status);
        this.live = true;
        const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let cut;
          while ((cut = buffer.indexOf("\n\n")) >= 0) {
            this.dispatch(buffer.slice(0, cut));
            buffer = buffer.slice(cut + 2);
          }
        }
      } catch (e) {
        if (abort.signal.aborted) return;
      }
      this.live = false;
      if (this.me && !abort.signal.aborted) {
        setTimeout(() => { if (this.me) { this.loadAll(); this.openStream(); } }, 2000);
      }
    },

    dispatch(block) {
      let topic = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) topic = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (!data) return;
      const event = JSON.parse(data);
      const handler = { orders: this.onOrder, fills: this.onFill, rejections: this.onRejection,
        "trading-state": this.onState, signals: this.onSignal }[topic];
      if (handler) handler.call(this, event);
    },

    later(name, ms, work) {  // coalesce a burst of events into one refresh
      clearTimeout(this.timers[name]);
      this.timers[name] = setTimeout(work, ms);
    },

    onOrder(e) {
      const i = this.orders.findIndex(o => o.client_order_id === e.client_order_id);
      const row = { ...(i >= 0 ? this.orders[i] : { created_at: e.occurred_at }), ...e,
        updated_at: e.occurred_at };
      if (i >= 0) this.orders.splice(i, 1, row); else this.orders.unshift(row);
      this.orders = this.orders.slice(0, MAX_ROWS);
      this.later("trades", 1500, () => this.loadTrades());
    },
    onFill(e) {
      if (!this.fills.some(f => f.event_id === e.event_id)) {
        this.fills.unshift(e);
        this.fills = this.fills.slice(0, MAX_ROWS);
      }
      this.later("pnl", 1500, () => { this.loadPnl(); this.loadTrades(); });
    },
    onRejection(e) {
      this.rejections.unshift(e);
      this.rejections = this.rejections.slice(0, MAX_ROWS);
      this.later("pending", 1500, () => this.loadPending());
    },
    onState(e) {
      const row = { scope: e.scope, mode: e.mode, since: e.occurred_at, issued_by: e.issued_by,
        reason: e.reason, command: e.command, details: e.details || {} };
      const i = this.states.findIndex(s => s.scope === e.scope);
      if (i >= 0) this.states.splice(i, 1, row); else this.states.push(row);
      this.later("pending", 500, () => this.loadPending());
    },
    onSignal() {
      // The audit sink stores the signal within a second or two; then it lists as pending.
      this.later("pending", 1500, () => this.loadPending());
    },

    // --- chart -----------------------------------------------------------------------
    plot() {
      const [t, r, u, total] = this.points;
      t.push(Date.now() / 1000); r.push(this.realized); u.push(this.unrealized);
      total.push(this.realized + this.unrealized);
      if (t.length > 2000) this.points.forEach(s => s.shift());
      const el = document.getElementById("chart");
      if (!el || typeof uPlot === "undefined") return;
      if (!this.chart || !el.contains(this.chart.root)) {
        el.innerHTML = "";
        this.chart = new uPlot({ width: Math.max(el.clientWidth, 600), height: 220,
          series: [{}, { label: "realized", stroke: "#2a7" }, { label: "unrealized", stroke: "#e80" },
            { label: "total", stroke: "#36c", width: 2 }],
          axes: [{}, { size: 70 }] }, this.points, el);
      } else {
        this.chart.setData(this.points);
      }
    },

    // --- formatting --------------------------------------------------------------------
    num(v) {
      if (v == null || v === "") return "";
      return Number(v).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 4 });
    },
    qty(v) { return v == null ? "" : Number(v).toLocaleString("en-US", { maximumFractionDigits: 6 }); },
    time(v) { return v ? new Date(v).toISOString().replace("T", " ").slice(0, 19) : ""; },
    sign(v) { return v == null ? "" : Number(v) >= 0 ? "pos" : "neg"; },
  }));
});
