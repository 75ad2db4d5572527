/* test_coro.c -- the stackless coroutine primitives of coro.h, on their own. */
#include <check.h>
#include <stdlib.h>

#include "coro.h"

/* ---- await: suspends while the condition is false ---- */

struct await_frame {
    struct coro co;
    int ready;
    int steps; /* how far the body got */
};

static int await_fn(struct await_frame *f)
{
    CORO_BEGIN(&f->co);
    f->steps = 1;
    CORO_AWAIT(&f->co, f->ready);
    f->steps = 2;
    CORO_END(&f->co);
}

START_TEST(test_await_waits_then_proceeds)
{
    struct await_frame f = {0};
    CORO_INIT(&f.co);
    ck_assert_int_eq(await_fn(&f), CORO_WAITING);
    ck_assert_int_eq(f.steps, 1);
    ck_assert(!CORO_FINISHED(&f.co));
    /* Still false: resuming re-evaluates and waits again without re-running. */
    ck_assert_int_eq(await_fn(&f), CORO_WAITING);
    ck_assert_int_eq(await_fn(&f), CORO_WAITING);
    ck_assert_int_eq(f.steps, 1);
    f.ready = 1;
    ck_assert_int_eq(await_fn(&f), CORO_DONE);
    ck_assert_int_eq(f.steps, 2);
    ck_assert(CORO_FINISHED(&f.co));
}
END_TEST

START_TEST(test_await_true_does_not_suspend)
{
    struct await_frame f = {.ready = 1};
    CORO_INIT(&f.co);
    ck_assert_int_eq(await_fn(&f), CORO_DONE);
    ck_assert_int_eq(f.steps, 2);
}
END_TEST

/* ---- locals in the frame survive awaits ---- */

struct locals_frame {
    struct coro co;
    int go;
    int a, b; /* "locals" kept in the frame */
    long sum;
};

static int locals_fn(struct locals_frame *f)
{
    CORO_BEGIN(&f->co);
    f->a = 7;
    CORO_AWAIT(&f->co, f->go >= 1);
    f->b = f->a * 6;
    CORO_AWAIT(&f->co, f->go >= 2);
    f->sum = f->a + f->b;
    CORO_END(&f->co);
}

START_TEST(test_locals_kept_in_frame)
{
    struct locals_frame f = {0};
    CORO_INIT(&f.co);
    ck_assert_int_eq(locals_fn(&f), CORO_WAITING);
    ck_assert_int_eq(f.a, 7);
    ck_assert_int_eq(f.b, 0);
    f.go = 1;
    ck_assert_int_eq(locals_fn(&f), CORO_WAITING);
    ck_assert_int_eq(f.b, 42);
    ck_assert_int_eq(f.sum, 0);
    f.go = 2;
    ck_assert_int_eq(locals_fn(&f), CORO_DONE);
    ck_assert_int_eq(f.sum, 49);
}
END_TEST

/* ---- yield ---- */

struct yield_frame {
    struct coro co;
    int trace[8];
    int n;
};

static int yield_fn(struct yield_frame *f)
{
    CORO_BEGIN(&f->co);
    f->trace[f->n++] = 1;
    CORO_YIELD(&f->co);
    f->trace[f->n++] = 2;
    CORO_YIELD(&f->co);
    f->trace[f->n++] = 3;
    CORO_END(&f->co);
}

START_TEST(test_yield_suspends_once_each)
{
    struct yield_frame f = {0};
    CORO_INIT(&f.co);
    ck_assert_int_eq(yield_fn(&f), CORO_WAITING);
    ck_assert_int_eq(f.n, 1);
    ck_assert_int_eq(yield_fn(&f), CORO_WAITING);
    ck_assert_int_eq(f.n, 2);
    ck_assert_int_eq(yield_fn(&f), CORO_DONE);
    ck_assert_int_eq(f.n, 3);
    ck_assert_int_eq(f.trace[0], 1);
    ck_assert_int_eq(f.trace[1], 2);
    ck_assert_int_eq(f.trace[2], 3);
}
END_TEST

/* ---- a loop with an await inside ---- */

struct loop_frame {
    struct coro co;
    int i;
    int avail;    /* items the producer has made available */
    int consumed; /* items the coroutine took */
    int total;
};

static int loop_fn(struct loop_frame *f)
{
    CORO_BEGIN(&f->co);
    for (f->i = 0; f->i < 5; f->i++) {
        CORO_AWAIT(&f->co, f->avail > f->consumed);
        f->consumed++;
        f->total += f->i * 10;
    }
    CORO_END(&f->co);
}

START_TEST(test_loop_with_await)
{
    struct loop_frame f = {0};
    CORO_INIT(&f.co);
    ck_assert_int_eq(loop_fn(&f), CORO_WAITING);
    ck_assert_int_eq(f.consumed, 0);
    for (int k = 1; k <= 4; k++) {
        f.avail = k;
        ck_assert_int_eq(loop_fn(&f), CORO_WAITING);
        ck_assert_int_eq(f.consumed, k);
        ck_assert_int_eq(f.i, k);
        /* Without a new item it stays put. */
        ck_assert_int_eq(loop_fn(&f), CORO_WAITING);
        ck_assert_int_eq(f.consumed, k);
    }
    f.avail = 5;
    ck_assert_int_eq(loop_fn(&f), CORO_DONE);
    ck_assert_int_eq(f.consumed, 5);
    ck_assert_int_eq(f.total, 0 + 10 + 20 + 30 + 40);
}
END_TEST

START_TEST(test_loop_runs_through_when_ready)
{
    struct loop_frame f = {.avail = 100};
    CORO_INIT(&f.co);
    ck_assert_int_eq(loop_fn(&f), CORO_DONE);
    ck_assert_int_eq(f.consumed, 5);
}
END_TEST

/* ---- timeout: await `ready || timed_out` ---- */

struct timeout_frame {
    struct coro co;
    int ready, timed_out;
    int outcome; /* 0: still waiting, 1: got ready, 2: timed out */
};

static int timeout_fn(struct timeout_frame *f)
{
    CORO_BEGIN(&f->co);
    CORO_AWAIT(&f->co, f->ready || f->timed_out);
    f->outcome = f->ready ? 1 : 2;
    CORO_END(&f->co);
}

START_TEST(test_timeout_fires)
{
    struct timeout_frame f = {0};
    CORO_INIT(&f.co);
    ck_assert_int_eq(timeout_fn(&f), CORO_WAITING);
    ck_assert_int_eq(timeout_fn(&f), CORO_WAITING);
    ck_assert_int_eq(f.outcome, 0);
    f.timed_out = 1; /* the timer */
    ck_assert_int_eq(timeout_fn(&f), CORO_DONE);
    ck_assert_int_eq(f.outcome, 2);
}
END_TEST

START_TEST(test_timeout_ready_first)
{
    struct timeout_frame f = {0};
    CORO_INIT(&f.co);
    ck_assert_int_eq(timeout_fn(&f), CORO_WAITING);
    f.ready = 1;
    ck_assert_int_eq(timeout_fn(&f), CORO_DONE);
    ck_assert_int_eq(f.outcome, 1);
    /* A timer firing afterwards changes nothing. */
    f.timed_out = 1;
    ck_assert_int_eq(timeout_fn(&f), CORO_DONE);
    ck_assert_int_eq(f.outcome, 1);
}
END_TEST

/* ---- cancel: the owner stops resuming and frees a suspended frame ---- */

static int cancel_after_await; /* set if the body ever ran past the await */

struct cancel_frame {
    struct coro co;
    int ready;
    char *scratch; /* owned by the frame; the owner frees it on cancel */
};

static int cancel_fn(struct cancel_frame *f)
{
    CORO_BEGIN(&f->co);
    f->scratch = malloc(32);
    CORO_AWAIT(&f->co, f->ready);
    cancel_after_await = 1;
    free(f->scratch);
    f->scratch = NULL;
    CORO_END(&f->co);
}

START_TEST(test_cancel_frees_suspended_frame)
{
    cancel_after_await = 0;
    struct cancel_frame *f = calloc(1, sizeof(*f));
    ck_assert_ptr_nonnull(f);
    CORO_INIT(&f->co);
    ck_assert_int_eq(cancel_fn(f), CORO_WAITING);
    ck_assert_ptr_nonnull(f->scratch);
    ck_assert(!CORO_FINISHED(&f->co));
    /* Cancel: never resume again; the owner releases what the frame holds. */
    free(f->scratch);
    free(f);
    ck_assert_int_eq(cancel_after_await, 0);
}
END_TEST

START_TEST(test_finished_returns_done_forever)
{
    struct await_frame f = {.ready = 1};
    CORO_INIT(&f.co);
    ck_assert_int_eq(await_fn(&f), CORO_DONE);
    ck_assert_int_eq(f.co.line, -1);
    f.steps = 99; /* would be overwritten if the body ran again */
    f.ready = 0;
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(await_fn(&f), CORO_DONE);
    ck_assert_int_eq(f.steps, 99);
}
END_TEST

/* ---- sub-coroutines via CORO_CALL ---- */

struct call_frame {
    struct coro co;   /* the caller's */
    struct coro sub;  /* the callee's */
    int gate1, gate2; /* callee's two awaits */
    int callee_runs;  /* times the callee body started */
    int callee_done;  /* times the callee body finished */
    int caller_after; /* times the caller ran past a CORO_CALL */
    int round;
};

static int callee(struct call_frame *f)
{
    CORO_BEGIN(&f->sub);
    f->callee_runs++;
    CORO_AWAIT(&f->sub, f->gate1);
    CORO_AWAIT(&f->sub, f->gate2);
    f->callee_done++;
    CORO_END(&f->sub);
}

static int caller(struct call_frame *f)
{
    CORO_BEGIN(&f->co);
    for (f->round = 0; f->round < 2; f->round++) {
        CORO_CALL(&f->co, &f->sub, callee(f));
        f->caller_after++;
        f->gate1 = f->gate2 = 0;
    }
    CORO_END(&f->co);
}

START_TEST(test_call_sub_coroutine)
{
    struct call_frame f = {0};
    CORO_INIT(&f.co);
    ck_assert_int_eq(caller(&f), CORO_WAITING);
    ck_assert_int_eq(f.callee_runs, 1);
    ck_assert_int_eq(f.caller_after, 0);
    f.gate1 = 1;
    ck_assert_int_eq(caller(&f), CORO_WAITING); /* now on the callee's 2nd await */
    ck_assert_int_eq(f.callee_done, 0);
    ck_assert_int_eq(f.caller_after, 0);
    f.gate2 = 1;
    /* Callee finishes; the caller continues in the same call, then calls it
     * again: CORO_CALL resets the callee, so its body starts anew. */
    ck_assert_int_eq(caller(&f), CORO_WAITING);
    ck_assert_int_eq(f.callee_done, 1);
    ck_assert_int_eq(f.caller_after, 1);
    ck_assert_int_eq(f.callee_runs, 2);
    ck_assert_int_eq(f.round, 1);
    f.gate1 = 1;
    ck_assert_int_eq(caller(&f), CORO_WAITING);
    ck_assert_int_eq(f.caller_after, 1);
    f.gate2 = 1;
    ck_assert_int_eq(caller(&f), CORO_DONE);
    ck_assert_int_eq(f.callee_runs, 2);
    ck_assert_int_eq(f.callee_done, 2);
    ck_assert_int_eq(f.caller_after, 2);
    ck_assert(CORO_FINISHED(&f.co));
    ck_assert(CORO_FINISHED(&f.sub));
}
END_TEST

START_TEST(test_call_resets_finished_callee)
{
    /* A callee left finished (line -1) would return DONE at once without
     * running; CORO_CALL must reset it first. */
    struct call_frame f = {.gate1 = 1, .gate2 = 1};
    f.sub.line = -1;
    CORO_INIT(&f.co);
    /* gate1/gate2 are reset by the caller after the first round. */
    ck_assert_int_eq(caller(&f), CORO_WAITING);
    ck_assert_int_eq(f.callee_runs, 2);
    ck_assert_int_eq(f.callee_done, 1);
    ck_assert_int_eq(f.caller_after, 1);
}
END_TEST

/* ---- CORO_EXIT ---- */

struct exit_frame {
    struct coro co;
    int bail;
    int go;
    int reached_end;
};

static int exit_fn(struct exit_frame *f)
{
    CORO_BEGIN(&f->co);
    CORO_AWAIT(&f->co, f->go);
    if (f->bail) CORO_EXIT(&f->co);
    f->reached_end = 1;
    CORO_END(&f->co);
}

START_TEST(test_exit_finishes_early)
{
    struct exit_frame f = {.bail = 1};
    CORO_INIT(&f.co);
    ck_assert_int_eq(exit_fn(&f), CORO_WAITING);
    f.go = 1;
    ck_assert_int_eq(exit_fn(&f), CORO_DONE);
    ck_assert_int_eq(f.reached_end, 0);
    ck_assert(CORO_FINISHED(&f.co));
    f.bail = 0;
    ck_assert_int_eq(exit_fn(&f), CORO_DONE);
    ck_assert_int_eq(f.reached_end, 0);
}
END_TEST

START_TEST(test_no_exit_reaches_end)
{
    struct exit_frame f = {.go = 1};
    CORO_INIT(&f.co);
    ck_assert_int_eq(exit_fn(&f), CORO_DONE);
    ck_assert_int_eq(f.reached_end, 1);
}
END_TEST

START_TEST(test_init_restarts)
{
    struct yield_frame f = {0};
    CORO_INIT(&f.co);
    ck_assert_int_eq(yield_fn(&f), CORO_WAITING);
    CORO_INIT(&f.co);
    ck_assert_int_eq(f.co.line, 0);
    ck_assert_int_eq(yield_fn(&f), CORO_WAITING);
    ck_assert_int_eq(f.n, 2);
    ck_assert_int_eq(f.trace[1], 1); /* started over from the top */
}
END_TEST

static Suite *coro_suite(void)
{
    Suite *s = suite_create("coro");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_await_waits_then_proceeds);
    tcase_add_test(tc, test_await_true_does_not_suspend);
    tcase_add_test(tc, test_locals_kept_in_frame);
    tcase_add_test(tc, test_yield_suspends_once_each);
    tcase_add_test(tc, test_loop_with_await);
    tcase_add_test(tc, test_loop_runs_through_when_ready);
    tcase_add_test(tc, test_timeout_fires);
    tcase_add_test(tc, test_timeout_ready_first);
    tcase_add_test(tc, test_cancel_frees_suspended_frame);
    tcase_add_test(tc, test_finished_returns_done_forever);
    tcase_add_test(tc, test_call_sub_coroutine);
    tcase_add_test(tc, test_call_resets_finished_callee);
    tcase_add_test(tc, test_exit_finishes_early);
    tcase_add_test(tc, test_no_exit_reaches_end);
    tcase_add_test(tc, test_init_restarts);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(coro_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
