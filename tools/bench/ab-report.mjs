#!/usr/bin/env node
// Markdown tables from ab.sh's runs.jsonl and bystander.mjs's JSON lines:
// every run, A and B side by side per round, with the load at the time.
//
// usage: node tools/bench/ab-report.mjs [--std runs.jsonl] [--big big.jsonl] [--rooms rooms.jsonl]
import fs from 'node:fs';

const args = process.argv.slice(2);
const opt = (n) => { const i = args.indexOf(n); return i < 0 ? null : args[i + 1]; };
const lines = (f) => (f ? fs.readFileSync(f, 'utf8').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l)) : []);
const fmt = (x, d = 0) => (x == null || Number.isNaN(x) ? '–' : Number(x).toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }));
const ms = (us) => (us == null ? '–' : fmt(us / 1000, 1));
const la1 = (s) => (s ? s.split(' ')[0] : '–');
const median = (a) => { const s = a.filter((x) => x != null).sort((x, y) => x - y); if (!s.length) return null; const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const out = [];

function table(title, rows, cols) {
  // rows: [{round, ab, ...}], cols: [[header, fn(run)]]
  out.push(`#### ${title}`, '');
  const rounds = [...new Set(rows.map((r) => r.round))].sort((a, b) => a - b);
  const hdr = ['round', ...cols.flatMap(([h]) => [`A ${h}`, `B ${h}`])];
  out.push(`| ${hdr.join(' | ')} |`, `|${hdr.map(() => '---').join('|')}|`);
  for (const rd of rounds) {
    const a = rows.find((r) => r.round === rd && r.ab === 'A') || {};
    const b = rows.find((r) => r.round === rd && r.ab === 'B') || {};
    out.push(`| ${rd} | ${cols.flatMap(([, f]) => [f(a), f(b)]).join(' | ')} |`);
  }
  out.push('');
}

const std = lines(opt('--std'));
const sc = (n) => std.filter((r) => r.scenario === n);
if (std.length) {
  table('capacity (deliveries/s, 1,000 clients in one room)', sc('capacity'), [
    ['deliveries/s', (r) => fmt(r.best_deliveries_per_s)],
    ['p99 ms', (r) => ms(r.best_p99_us)],
    ['failed at (p99 ms)', (r) => (r.failed_rate ? `${fmt(r.failed_rate * 1000)} (${ms(r.failed_p99_us)})` : '–')],
    ['server CPU %', (r) => fmt(r.best_server_cpu_pct)],
    ['server CPU % at the 67k / 101k steps (others %)', (r) => [67.5, 101.25].map((x) => { const st = (r.steps_detail || []).find((d) => Math.abs(d[0] - x) < 0.5); return st ? `${st[4]} (${st[7]})` : '–'; }).join(' / ')],
    ['others CPU % (best step)', (r) => fmt(r.best_other_cpu_pct)],
    ['load', (r) => la1(r.loadavg_before)],
  ]);
  table('acks (acked messages/s, 10 senders, window 64)', sc('acks'), [
    ['acks/s', (r) => fmt(r.acks_per_s)],
    ['ack p50/p99 ms', (r) => (r.ack_us ? `${ms(r.ack_us.p50)} / ${ms(r.ack_us.p99)}` : '–')],
    ['server CPU %', (r) => fmt(r.server_cpu_pct)],
    ['others CPU %', (r) => fmt(r.other_cpu_pct)],
    ['load', (r) => la1(r.loadavg_before)],
  ]);
  table('idle (bytes of server RSS per idle connection, 19,900 connections)', sc('idle'), [
    ['bytes/conn', (r) => fmt(r.rss_per_conn_bytes)],
    ['RSS MiB', (r) => fmt(r.server_rss_kb / 1024, 1)],
    ['load before/after', (r) => `${la1(r.loadavg_before)} / ${la1(r.loadavg_after)}`],
  ]);
  out.push('Medians over the rounds:', '');
  for (const [s, n, f] of [['capacity', 'capacity deliveries/s', (r) => r.best_deliveries_per_s], ['acks', 'acks/s', (r) => r.acks_per_s], ['idle', 'idle bytes/conn', (r) => r.rss_per_conn_bytes]]) {
    out.push(`- ${n}: A ${fmt(median(sc(s).filter((r) => r.ab === 'A').map(f)))}, B ${fmt(median(sc(s).filter((r) => r.ab === 'B').map(f)))}`);
  }
  out.push('');
}

function bystanderTable(title, rows, extra) {
  table(title, rows, [
    ['alone p50/p99 ms', (r) => (r.alone ? `${fmt(r.alone.p50_ms, 1)} / ${fmt(r.alone.p99_ms, 1)}` : '–')],
    ['loaded p50/p99 ms', (r) => (r.loaded ? `${fmt(r.loaded.p50_ms, 1)} / ${fmt(r.loaded.p99_ms, 1)}` : '–')],
    ['loaded max ms', (r) => (r.loaded ? fmt(r.loaded.max_ms, 0) : '–')],
    ...extra,
    ['server CPU % loaded', (r) => (r.loaded ? fmt(r.loaded.server_cpu_pct) : '–')],
    ['others CPU % alone/loaded', (r) => (r.loaded ? `${fmt(r.alone.other_cpu_pct)} / ${fmt(r.loaded.other_cpu_pct)}` : '–')],
    ['peak RSS MiB', (r) => fmt(r.server_peak_rss_mb, 1)],
    ['load', (r) => la1(r.alone?.loadavg_before)],
  ]);
}
const withRounds = (rs) => { const n = { A: 0, B: 0 }; return rs.map((r) => ({ ...r, ab: r.label.startsWith('B') ? 'B' : 'A', round: r.round ?? ++n[r.label.startsWith('B') ? 'B' : 'A'] })); };
const big = withRounds(lines(opt('--big')));
if (big.length) {
  bystanderTable('bystander vs 3 clients looping `join big since=0`', big, [
    ['joined replies (MB)', (r) => (r.readers ? `${fmt(r.readers_total.joined)} (${fmt(r.readers.reduce((a, x) => a + x.joined_mb, 0))})` : '–')],
    ['rate_limited', (r) => (r.readers ? fmt(r.readers_total.rate_limited) : '–')],
  ]);
}
const rooms = withRounds(lines(opt('--rooms')));
if (rooms.length) {
  bystanderTable('bystander vs 2 clients sending `rooms` 60/s (10,000 rooms online)', rooms, [
    ['rooms replies / sent', (r) => (r.askers ? `${fmt(r.askers.reduce((a, x) => a + x.rooms, 0))} / ${fmt(r.askers.reduce((a, x) => a + x.sent, 0))}` : '–')],
    ['rate_limited', (r) => (r.askers ? fmt(r.askers.reduce((a, x) => a + x.rate_limited, 0)) : '–')],
  ]);
  table('/healthz `rooms` around 4,500 refused joins', rooms, [
    ['joined / refused', (r) => (r.refused_phase ? `${fmt(r.refused_phase.joined)} / ${fmt(r.refused_phase.refused)}` : '–')],
    ['rooms while connected', (r) => fmt(r.refused_phase?.healthz_connected?.rooms)],
    ['distinct rooms joined', (r) => fmt(r.distinct_rooms_joined)],
    ['rooms after all left', (r) => fmt(r.healthz_after_all_left?.rooms)],
  ]);
}
console.log(out.join('\n'));
