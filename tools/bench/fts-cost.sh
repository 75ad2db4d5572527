#!/usr/bin/env bash
# fts-cost.sh -- the CPU an insert costs with and without the FTS5 index,
# outside the server: the sqlite3 shell inserts N messages in transactions
# of BATCH rows (as the server's group commit does) into a database created
# by each binary, with synchronous=OFF so that no fsync is counted, twice:
# texts shaped like parley-loadgen's (`t=<ns>;` + 'x' padding to 100 bytes:
# one new number term per message) and chat-like texts (11 words from a
# 4,000-word vocabulary, as gen-history.mjs writes).
#
# usage: tools/bench/fts-cost.sh A_BIN B_BIN [N=200000] [BATCH=100]
# Prints one line per binary and text kind: user+sys CPU seconds and
# microseconds per message, and the file size after the inserts.
set -euo pipefail
A=$(realpath "$1") B=$(realpath "$2") N=${3:-200000} BATCH=${4:-100}
WORK=$(mktemp -d /tmp/fts-cost.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
migrate() { # BIN DB: start the server on DB so that it migrates it, then stop it
    local port=$((20000 + RANDOM % 20000))
    "$1" --port $port --bind 127.0.0.1 --db "$2" --threads 1 --log-level warn &
    local pid=$!
    for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done
    kill $pid; wait $pid 2>/dev/null || true
}
# the inserts, as SQL: BEGIN; N/BATCH x (BATCH inserts); COMMIT
node - "$N" "$BATCH" "$WORK" <<'EOF'
const [n, batch, dir] = [+process.argv[2], +process.argv[3], process.argv[4]];
const fs = require('fs');
let s = 1;
const rnd = () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s / 4294967296; };
const vocab = Array.from({ length: 4000 }, (_, i) => 'w' + i.toString(36) + 'abcdefgh'.slice(0, i % 6));
const cum = []; let tot = 0; vocab.forEach((_, r) => { tot += 1 / (r + 1); cum.push(tot); });
const word = () => { const x = rnd() * tot; let lo = 0, hi = cum.length - 1; while (lo < hi) { const m = (lo + hi) >> 1; if (cum[m] < x) lo = m + 1; else hi = m; } return vocab[lo]; };
for (const kind of ['loadgen', 'chat']) {
  const out = [];
  let ns = 123456789000;
  for (let i = 1; i <= n; i++) {
    if ((i - 1) % batch === 0) out.push('BEGIN;');
    let t;
    if (kind === 'loadgen') { ns += 9000 + Math.floor(rnd() * 2000); t = `t=${ns};`; t += 'x'.repeat(100 - t.length); }
    else t = Array.from({ length: 11 }, word).join(' ');
    out.push(`INSERT INTO messages(room,user_id,user_name,text,ts,client_id,rev) VALUES('r0','g_${i % 10}','lg${i % 10}','${t}',${1700000000000 + i},'c${i}',0);`);
    if (i % batch === 0 || i === n) out.push('COMMIT;');
  }
  fs.writeFileSync(`${dir}/${kind}.sql`, 'PRAGMA journal_mode=WAL;\nPRAGMA synchronous=OFF;\n' + out.join('\n') + '\n');
}
EOF
for kind in loadgen chat; do
    for ab in A B; do
        bin=$A; [ $ab = B ] && bin=$B
        db=$WORK/$ab-$kind.db
        migrate "$bin" "$db"
        s=$( { /usr/bin/time -f '%U %S' sqlite3 "$db" <"$WORK/$kind.sql" >/dev/null; } 2>&1 | tail -1)
        sqlite3 "$db" 'PRAGMA wal_checkpoint(TRUNCATE);' >/dev/null
        size=$(stat -c %s "$db")
        echo "$ab $kind N=$N batch=$BATCH user_sys_s=$s" | awk -v n="$N" -v size="$size" '{split($0,a,"="); u=$(NF-1); sub(/.*=/,"",u); sy=$NF; printf "%s us_per_msg=%.1f file_bytes=%d load=%s\n", $0, (u+sy)*1e6/n, size, "'"$(cut -d' ' -f1 /proc/loadavg)"'"}'
    done
done
