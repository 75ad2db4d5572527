/* coro.h -- stackless coroutines for C.
 *
 * A coroutine is an ordinary function `int fn(T *frame)` whose body is
 * wrapped in CORO_BEGIN/CORO_END. It runs until it has to wait, returns
 * CORO_WAITING, and continues after that point the next time it is called.
 * Its resume point is one int (struct coro) kept in the caller's frame struct:
 * an await allocates nothing.
 *
 * Rules that keep this sound (each is a classic trap):
 *  - Locals do not survive an await. Everything that must live across one
 *    lives in the frame struct.
 *  - The resume point is a `case` label of the switch opened by CORO_BEGIN,
 *    so no await may sit inside another switch statement in the body.
 *  - The frame must not be freed while the coroutine is suspended or while it
 *    runs; the owner frees it from outside, after cancelling it.
 *
 * Sub-coroutines: a coroutine awaits another with CORO_CALL; the callee keeps
 * its resume point in its own struct coro (also in the frame), which
 * CORO_CALL resets before the first call.
 */
#ifndef PARLEY_CORO_H
#define PARLEY_CORO_H

enum { CORO_WAITING = 0, CORO_DONE = 1 };

struct coro {
    int line; /* 0: not started; -1: finished; else the resume point */
};

#define CORO_INIT(c) ((c)->line = 0)
#define CORO_FINISHED(c) ((c)->line == -1)

#define CORO_BEGIN(c)                                                                    \
    switch ((c)->line) {                                                                 \
    case -1:                                                                             \
        return CORO_DONE;                                                                \
    case 0:

/* Suspend until `cond` is true; `cond` is re-evaluated on every resume. */
#define CORO_AWAIT(c, cond)                                                              \
    do {                                                                                 \
        (c)->line = __LINE__;                                                            \
        /* fall through */                                                               \
    case __LINE__:                                                                       \
        if (!(cond)) return CORO_WAITING;                                                \
    } while (0)

/* Suspend once, unconditionally. */
#define CORO_YIELD(c)                                                                    \
    do {                                                                                 \
        (c)->line = __LINE__;                                                            \
        return CORO_WAITING;                                                             \
    case __LINE__:;                                                                      \
    } while (0)

/* Run sub-coroutine `call` (an expression returning CORO_WAITING/CORO_DONE),
 * whose struct coro is `sub`, until it finishes. */
#define CORO_CALL(c, sub, call)                                                          \
    do {                                                                                 \
        CORO_INIT(sub);                                                                  \
        CORO_AWAIT(c, (call) == CORO_DONE);                                              \
    } while (0)

/* Finish now; later calls return CORO_DONE without running anything. */
#define CORO_EXIT(c)                                                                     \
    do {                                                                                 \
        (c)->line = -1;                                                                  \
        return CORO_DONE;                                                                \
    } while (0)

#define CORO_END(c)                                                                      \
    }                                                                                    \
    (c)->line = -1;                                                                      \
    return CORO_DONE

#endif
