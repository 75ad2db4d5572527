/* test_json_race.c -- no two of the server's JSON parses run at once.
 *
 * Every cJSON parse (1.7.15, Debian 12) writes cJSON's static global_error,
 * also on success and also through cJSON_ParseWithOpts with a local end
 * pointer; parses on two event-loop threads at once are a data race. The
 * library is not built with a sanitizer, so TSan can't see that write. This
 * test stands in for it: it interposes the cJSON parse functions (the
 * executable's definitions win over libcjson's) and counts a parse that
 * starts while another thread's is still inside cJSON. Each parse lingers
 * 200 us inside, so unserialized parses from three threads overlap at once
 * (seen: on the code before the lock, hundreds of overlaps per run). */
#define _GNU_SOURCE
#include <check.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "jwt.h"
#include "protocol.h"

static atomic_int inside;       /* threads inside a cJSON parse */
static atomic_int overlaps;     /* parses that began while another ran */
static atomic_int parses;       /* outermost parses seen */
static _Thread_local int depth; /* cJSON's parse functions call each other */

static void enter(void)
{
    if (depth++) return;
    atomic_fetch_add(&parses, 1);
    if (atomic_fetch_add(&inside, 1)) atomic_fetch_add(&overlaps, 1);
    usleep(200); /* widen the window, as a slow parse of a big frame would */
}

static void leave(void)
{
    if (--depth) return;
    atomic_fetch_sub(&inside, 1);
}

/* The real functions, looked up before any thread starts. */
static cJSON *(*real_parse)(const char *);
static cJSON *(*real_parse_len)(const char *, size_t);
static cJSON *(*real_parse_opts)(const char *, const char **, cJSON_bool);
static cJSON *(*real_parse_len_opts)(const char *, size_t, const char **, cJSON_bool);

static void find_real(void)
{
    real_parse = (cJSON * (*)(const char *)) dlsym(RTLD_NEXT, "cJSON_Parse");
    real_parse_len =
        (cJSON * (*)(const char *, size_t)) dlsym(RTLD_NEXT, "cJSON_ParseWithLength");
    real_parse_opts = (cJSON * (*)(const char *, const char **, cJSON_bool))
        dlsym(RTLD_NEXT, "cJSON_ParseWithOpts");
    real_parse_len_opts = (cJSON * (*)(const char *, size_t, const char **, cJSON_bool))
        dlsym(RTLD_NEXT, "cJSON_ParseWithLengthOpts");
    ck_assert(real_parse && real_parse_len && real_parse_opts && real_parse_len_opts);
}

cJSON *cJSON_Parse(const char *v)
{
    enter();
    cJSON *j = real_parse(v);
    leave();
    return j;
}

cJSON *cJSON_ParseWithLength(const char *v, size_t n)
{
    enter();
    cJSON *j = real_parse_len(v, n);
    leave();
    return j;
}

cJSON *cJSON_ParseWithOpts(const char *v, const char **end, cJSON_bool nul)
{
    enter();
    cJSON *j = real_parse_opts(v, end, nul);
    leave();
    return j;
}

cJSON *cJSON_ParseWithLengthOpts(const char *v, size_t n, const char **end,
                                 cJSON_bool nul)
{
    enter();
    cJSON *j = real_parse_len_opts(v, n, end, nul);
    leave();
    return j;
}

#define ROUNDS 150
static const char SECRET[] = "s3cret-key-for-the-race-test";
static pthread_barrier_t start;

/* A loop's work: valid and invalid frames (both write cJSON's global). */
static void *frames(void *arg)
{
    static const char *f[] = {
        "{\"type\":\"send\",\"room\":\"lobby\",\"text\":\"hi\",\"client_id\":\"c1\"}",
        "{\"type\":\"join\",\"room\":\"lobby\"", /* truncated: a parse error */
    };
    struct proto_limits lim = {.max_text = 4000};
    pthread_barrier_wait(&start);
    for (int i = 0; i < ROUNDS; i++) {
        struct proto_req r;
        const char *msg;
        const char *s = f[i % 2];
        proto_parse(s, strlen(s), &lim, &r, &msg);
        proto_req_free(&r);
    }
    return arg;
}

/* A hello with a token: its header and payload are parsed too. */
static void *tokens(void *arg)
{
    char *tok = arg;
    pthread_barrier_wait(&start);
    for (int i = 0; i < ROUNDS; i++) {
        struct jwt_claims c;
        const char *why;
        if (!jwt_verify(tok, SECRET, sizeof SECRET - 1, 1000, &c, &why))
            jwt_claims_free(&c);
    }
    return NULL;
}

START_TEST(test_parses_never_overlap)
{
    find_real();
    char *tok = jwt_sign(SECRET, sizeof SECRET - 1, "u1", "Ann", 2000, "[\"lobby\"]");
    ck_assert_ptr_nonnull(tok);
    atomic_store(&overlaps, 0);
    atomic_store(&parses, 0);
    pthread_barrier_init(&start, NULL, 3);
    pthread_t t[3];
    pthread_create(&t[0], NULL, frames, NULL);
    pthread_create(&t[1], NULL, frames, NULL);
    pthread_create(&t[2], NULL, tokens, tok);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&start);
    free(tok);
    /* The interposition works: every parse went through it. */
    ck_assert_int_ge(atomic_load(&parses), 4 * ROUNDS);
    ck_assert_msg(atomic_load(&overlaps) == 0,
                  "%d of %d parses ran while another thread was inside cJSON",
                  atomic_load(&overlaps), atomic_load(&parses));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("json_race");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_parses_never_overlap);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
