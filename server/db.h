/* db.h -- the database worker: the only code that touches SQLite.
 *
 * One worker thread owns the connection. The event loop submits requests
 * into a bounded FIFO; the worker takes everything queued (up to a cap) as
 * a batch, runs its sends in order inside one transaction (group commit)
 * and commits, then runs its reads, each in its own read transaction.
 * Completions are moved to a done list in chunks: the batch's writes, in
 * submission order, as soon as the commit is done, then each read on its
 * own. After each chunk the worker calls the wake hook (in the server:
 * hub_route) so the loop collects it with db_take_done(). So a long read
 * delays neither the commit of its batch nor any ack of it.
 *
 * Ordering contract: writes complete in submission order, and a read
 * completes after every write submitted before it and every write of its
 * batch (DB_SEARCH excepted: it runs on its own thread and completes
 * whenever it is done, seeing what was committed when it began). A read
 * sees exactly the writes that completed before it (rows, `more` and
 * `last_id` alike): it runs over the ids committed so far. The loop relies
 * on this to join a member to a room with no gap and no duplicate between
 * history and live broadcast: every event the read shows (an edit of an
 * older message too) was routed before the member joined, every later one
 * after. Retention pruning never runs between a batch's commit and its
 * reads (it only runs while the queue is empty).
 *
 * Failure contract: the sends of a batch are stored all together or not at
 * all. When the transaction cannot begin or commit, or SQLite rolls it back
 * itself in the middle of the batch (disk full, I/O error, out of memory),
 * the rest of the batch is not run, nothing of it is stored, and every
 * write of the batch fails (DB_BUSY or DB_FAILED, never DB_OK): a retry
 * with the same client_id then stores the message once. Its reads still
 * run, on what was committed before the batch (a full disk refuses writes,
 * not reads: a new user's hello records the user, and must not fail the
 * reads that share its batch). A statement that
 * fails without ending the transaction (a constraint, say) fails only its
 * own request, and so does a read that fails (it runs after the commit).
 *
 * Retention: when configured, the worker deletes old messages while the
 * queue is empty, a few hundred rows per transaction, and goes back to
 * requests as soon as one is queued.
 *
 * Ownership: a request (struct db_req) belongs to its submitter, which must
 * keep it and its input strings alive and unchanged from db_submit() until
 * db_take_done() hands it back. Outputs are written by the worker before
 * completion and read by the loop after. `rows` is then owned by the
 * submitter (buf_unref it).
 */
#ifndef PARLEY_DB_H
#define PARLEY_DB_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct db_search_scope;
struct event;
struct room;

/* A read's rows (MESSAGE objects as JSON) stop before passing this many
 * bytes: a 4,000-character text of control characters is 24 KB escaped,
 * and a join with `since` may ask for 1,000 messages. */
#define DB_READ_MAX_BYTES (256 * 1024)

/* DB_POST, DB_ROOM_FREE and DB_MOD_EFFECT are never submitted: they are
 * items one thread hands to an event loop's inbox (hub.c), in the same
 * FIFO as that loop's completions: a frame for a room, a room's free
 * marker, and a moderation action's effect. */
enum db_op {
    DB_SEND,
    DB_READ,
    DB_EDIT,   /* a message's new text, by its author */
    DB_DELETE, /* a message made a tombstone, by its author or a moderator */
    DB_USER,   /* a welcomed user recorded (users table); nobody waits for it */
    DB_DM,     /* a pair's DM room made (dm_rooms), unless it exists */
    DB_MARK,   /* a user's read marker in a room moved forward (read_markers) */
    /* A full-text search: run by the search thread (db_search.h), beside
     * the worker and in no order with its requests. */
    DB_SEARCH,
    /* A moderation action (kick, mute, ban, unmute, unban: mod_action)
     * logged in mod_log, and the mute or ban stored or lifted (sanctions):
     * room (NULL: server-wide), user_id/user_name the moderator, peer_id
     * the target, text the reason or NULL, msg_id when it ends (Unix ms; 0:
     * until lifted). */
    DB_MOD,
    DB_POST,
    DB_ROOM_FREE,
    /* A moderation action's effect on a user's connections on another
     * loop (moderate.h): pair holds "user\0room\0" (room "" for a
     * server-wide ban), frame the `removed` frame or NULL, mod_action what
     * was done. */
    DB_MOD_EFFECT
};

enum db_mod_action { DB_MOD_KICK, DB_MOD_MUTE, DB_MOD_BAN, DB_MOD_UNMUTE, DB_MOD_UNBAN };

enum db_sanctioned { SANCTIONED_NONE, SANCTIONED_MUTE, SANCTIONED_BAN };

enum db_status {
    DB_OK = 0,
    DB_BUSY,      /* locked, disk full or similar: retry later (overloaded) */
    DB_FAILED,    /* any other error (internal) */
    DB_NOT_FOUND, /* DB_EDIT/DB_DELETE: no such message in the room, or deleted;
                     DB_DM: no such user */
    /* DB_EDIT/DB_DELETE: not the author (nor a moderator); any request on a
     * DM room: not one of its two users; DB_DM: a guest peer, refused */
    DB_FORBIDDEN,
};

/* Field order keeps the struct free of holes: a session embeds one. */
struct db_req {
    struct db_req *next; /* FIFO link; the db's from submit to take_done */
    enum db_op op;
    int loop;    /* the submitter's event loop; the db never reads it */
    void *owner; /* for the submitter; the db never dereferences it */
    /* DB_SEND: the stored message as broadcast, made by the router (hub.c)
     * after the commit; DB_POST: the frame to deliver. A reference. */
    struct buf *frame;
    /* DB_SEND (stored) and DB_POST: the room, found once by the router or
     * the poster so no loop looks it up again (rooms are never freed). */
    struct room *dest;

    /* Inputs. */
    const char *room;
    const char *user_id, *user_name, *client_id, *text; /* DB_SEND; EDIT: text */
    size_t text_len;
    int64_t msg_id;      /* DB_EDIT, DB_DELETE: the message changed */
    const char *peer_id; /* DB_DM: the other user */
    /* DB_SEARCH: what to match and where (db_search.h), the submitter's. */
    const struct db_search_scope *scope;
    /* DB_READ with dms: the rooms the loop lists (names), whose markers and
     * unread counts are wanted too. The submitter's, like every input. */
    const char *const *rooms_in;
    int nrooms_in;
    /* DB_READ: -1, or a join's `since`: the changes after it, in rev order,
     * split into rows (messages with id > since, oldest first) and updates
     * (the current state of older ones). before/after are ignored then. */
    int64_t since;
    int64_t before, after; /* DB_READ: -1 when absent; after wins when >= 0 */
    /* DB_READ: rows at most. A read may return fewer, with more = 1, when
     * `limit` rows would pass db_options.read_max_bytes (one row at least). */
    int limit;
    unsigned any_author : 1;   /* DB_DELETE: may delete anyone's (a moderator) */
    unsigned admin : 1;        /* DB_DELETE: also in a DM room of others (an admin) */
    unsigned guest : 1;        /* DB_USER; DB_READ with dms: the user is a guest */
    unsigned no_guest_dms : 1; /* DB_DM: refuse a guest peer */
    /* DB_READ: instead of messages, r->user_id's part of the rooms listing
     * (db_mark_rooms; run by the search thread when there is one, so in no
     * order with writes), or only the check that it is one of the DM
     * room's users. */
    unsigned dms : 1, check : 1;
    unsigned mark : 1;       /* DB_READ (a join): also the user's read marker */
    unsigned mod_action : 3; /* DB_MOD: enum db_mod_action */
    /* DB_USER: the token's role (jwt.h JWT_ROLE_*). DB_MOD: the actor's,
     * and target_role the highest of the target's open connections, every
     * loop's (ranks.h); the database adds the role it stored at the
     * target's last welcome, and refuses (DB_FORBIDDEN) unless the actor's
     * is higher; a lift (unmute, unban) only a mod's on a target with a
     * role (db_mod.c). The API (api) is above every role. */
    unsigned role : 2, target_role : 2;
    /* Made by the HTTP API (api.c), whose key holder is trusted like an
     * admin: its completion goes to api_on_done, not to a session; a DM
     * room's pair check is skipped (the pair is still found, for delivery);
     * a DB_SEND is a bot's message (messages.bot); and every write logs a
     * mod_log row with actor 'api' in its transaction. */
    unsigned api : 1;
    /* DB_READ for the API's rooms listing: instead of messages, every room
     * with a message, each a line "name last_id\n" in `rows` sorted by
     * name (last_id: its highest id or rev the read may see). */
    unsigned all_rooms : 1;
    /* An event of the cluster's log (event.h: the request is the first
     * member of a struct event), applied by the worker for every node;
     * loop -1 when no session of this node waits for it. */
    unsigned logged : 1;
    /* Output, cluster mode: a send, edit or delete refused where it was
     * applied, because its user was muted (SANCTIONED_MUTE, a send or
     * edit) or banned (SANCTIONED_BAN) in its room or server-wide at the
     * event's time; status is then DB_FORBIDDEN and ts the sanction's end
     * (Unix ms; 0: until lifted). The log's order decides, alike on every
     * node: a write logged after a mute is refused everywhere, even if
     * the node it came from had not applied the mute yet. */
    unsigned sanctioned : 2;
    /* Cluster mode, a send Redis called a duplicate of an event applied
     * since: dup_check makes the worker answer it from SQLite (the stored
     * message, duplicate = 1), or when none is stored (the first was
     * refused) send it to the log again with no_dedup (no dedup key). */
    unsigned dup_check : 1, no_dedup : 1;

    /* Outputs. */
    enum db_status status;
    int duplicate;       /* DB_SEND: client_id seen before; id/ts are the first's */
    int64_t id, ts;      /* DB_SEND: the stored message; EDIT/DELETE: the change (rev);
                            DB_SEARCH: ts is the microseconds it ran (queue wait excluded) */
    struct buf *rows;    /* DB_READ: MESSAGE objects joined by commas, oldest first */
    struct buf *updates; /* DB_READ with since: MESSAGEs changed, by rev; else NULL */
    int nrows;
    int more;        /* DB_READ: more rows exist in the direction read */
    int64_t last_id; /* DB_READ: the room's newest id or rev the read may see, or 0 */
    int64_t read_id; /* DB_READ with mark: the user's read marker (0: none) */
    /* In a DM room (names "dm-…"; every request checks r->user_id is one of
     * its pair, reads and writes alike, and carries user_id): a write's
     * pair, "a\0b\0", for delivery to both users' connections; a read's
     * peer, the other user's USER JSON. New references, the submitter's. */
    struct buf *pair, *peer;
};

struct db_options {
    const char *path;
    int queue_max;             /* requests queued at most; beyond, db_submit refuses */
    int batch_max;             /* requests per transaction at most */
    int sync_full;             /* PRAGMA synchronous=FULL (else NORMAL) */
    int busy_ms;               /* how long to wait for another process's lock */
    int64_t retention_ms;      /* delete messages older than this; 0: keep */
    int64_t max_per_room;      /* keep this many newest per room; 0: all */
    int64_t prune_interval_ms; /* how often the worker prunes when idle (60 s) */
    void (*wake)(void *arg);   /* called by the worker after each chunk of completions */
    void *wake_arg;
    size_t read_max_bytes; /* rows of one DB_READ at most; 0: DB_READ_MAX_BYTES */
    const char *vfs; /* SQLite VFS name for sqlite3_open_v2; NULL: the default (tests
                        register a fault-injecting one) */
    /* Called by the search thread with each finished DB_SEARCH (in the
     * server: hub_complete). NULL: no search thread, DB_SEARCH refused. */
    void (*search_done)(void *arg, struct db_req *r);
    void *search_arg;
    int no_guest_dms; /* --no-guest-dms: DM rooms with a guest are closed */
    /* Cluster mode (cluster.h), all three called on the worker thread;
     * forward NULL: one node, writes run here. forward takes a write to the
     * log (the cluster owns it until it completes it with db_complete or
     * claim returns it): 0, or -1 to fail it DB_BUSY now. claim returns the
     * request of this node an applied event answers, out of the cluster's
     * hands, or NULL. applied says a batch of events was committed (ok, pos
     * the new position) or rolled back (!ok, pos the position kept). */
    int (*forward)(void *arg, struct db_req *r);
    struct db_req *(*claim)(void *arg, struct event *e);
    void (*applied)(void *arg, int64_t pos, int ok);
    void *cluster_arg;
};

struct db_stats {
    uint64_t batches, stored, duplicates, failures, pruned;
    uint64_t aborted;       /* batches whose transaction SQLite rolled back mid-batch */
    uint64_t batch_hist[8]; /* sizes: 1, 2-4, 5-16, 17-64, 65-256, 257-1024, more */
    /* Microseconds from BEGIN to COMMIT of the batches with sends (their
     * reads run after): <=100, 1ms, 5ms, 10ms, 50ms, 100ms, 1s, more. */
    uint64_t commit_hist[8];
    double commit_sum_us;
    uint64_t batch_sum;
    int queue_depth;
    int64_t index_lag; /* ids committed above the search index's watermark */
};

struct db;

/* Opens (creating if needed) and migrates the database, then starts the
 * worker. Returns NULL with a one-line reason in err (errlen bytes). Runs on
 * the main thread before the loop starts. */
struct db *db_open(const struct db_options *opt, char *err, size_t errlen);
/* Queues r. Returns 0, or -1 when the queue is full or the db is stopping
 * (then r is untouched and stays the caller's). Any thread. */
int db_submit(struct db *db, struct db_req *r);
/* Queues an event read from the cluster's log (r->logged, event.h), past
 * the queue's bound (the reader bounds what it has in flight). The db owns
 * it from here: it frees it, or hands it to the router, which does. Returns
 * 0, or -1 when stopping (r is still the caller's). Any thread. */
int db_submit_event(struct db *db, struct db_req *r);
/* Puts r, a request the db had handed to the cluster (db_options.forward),
 * on the done list now, with its status and outputs as set, and wakes the
 * loop. Any thread. */
void db_complete(struct db *db, struct db_req *r);
/* The cluster's log position applied and committed (0: none). Any thread. */
int64_t db_log_pos(struct db *db);
/* The highest id or position the file holds. Main thread, before any write. */
int64_t db_high_id(struct db *db);
/* Moves every finished request out (under the lock) and calls fn on each,
 * in completion order, outside the lock. Event-loop thread. */
void db_take_done(struct db *db, void (*fn)(struct db_req *r, void *arg), void *arg);
/* Current depth of the queue and a copy of the statistics. Any thread. */
void db_stats(struct db *db, struct db_stats *out);
/* Reads a setting, creating it with `fresh` when absent. Any thread; it
 * waits for the worker's current transaction (the worker may already be
 * pruning). Returns a malloc'd value or NULL. */
char *db_setting(struct db *db, const char *key, const char *fresh);
/* Stores a setting, replacing it. Any thread, as db_setting. Returns 0 or
 * -1. */
int db_setting_set(struct db *db, const char *key, const char *value);
/* Calls fn for each mute and ban in force at now_ms, from the sanctions
 * table (room "" is server-wide; until 0: until lifted). Main thread, at
 * start (it takes the connection lock). Returns 0, or -1 on an error. */
int db_sanctions_load(struct db *db, int64_t now_ms,
                      void (*fn)(void *arg, const char *user, const char *room, int ban,
                                 int64_t until),
                      void *arg);
/* Stops accepting, lets the worker commit everything queued, joins it. The
 * done list is left for a last db_take_done(). */
void db_stop(struct db *db);
/* Frees the db; requests still on the done list are dropped without a
 * callback (their rows freed). Call after db_stop(). */
void db_close(struct db *db);

#endif
