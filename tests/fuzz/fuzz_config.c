/* fuzz_config.c -- config_parse() on any command line (argv from the input
 * split on NUL bytes) and any PARLEY_* environment (a leading part of the
 * input, "NAME=value\n" lines, before a 0xFF byte). Checks the result is one
 * of the three documented codes and, when accepted, that every value is in
 * its documented range; config_origin_allowed() on the parsed list.
 * config_parse prints help and errors; run with -close_fd_mask=3.
 */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

static char *set_vars[64];
static int nset;

static void env_from(const char *p, size_t n)
{
    while (n && nset < 64) {
        const char *nl = memchr(p, '\n', n);
        size_t len = nl ? (size_t)(nl - p) : n;
        char *line = strndup(p, len);
        char *eq = strchr(line, '=');
        if (eq && eq != line) {
            *eq = 0;
            char name[80];
            snprintf(name, sizeof name, "PARLEY_%s", line);
            setenv(name, eq + 1, 1);
            set_vars[nset++] = strdup(name);
        }
        free(line);
        if (!nl) break;
        p += len + 1;
        n -= len + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *d = (const char *)data;
    const char *ff = memchr(d, 0xFF, size);
    if (ff) {
        env_from(d, (size_t)(ff - d));
        size -= (size_t)(ff - d) + 1;
        d = ff + 1;
    }
    /* argv: "parley", then NUL-separated arguments (at most 64). */
    char *buf = malloc(size + 1);
    memcpy(buf, d, size);
    buf[size] = 0;
    char *argv[66];
    int argc = 0;
    argv[argc++] = "parley";
    for (size_t i = 0; i <= size && argc < 65;) {
        argv[argc++] = buf + i;
        i += strlen(buf + i) + 1;
    }
    argv[argc] = NULL;
    if (size == 0) argc = 1;

    struct config c;
    int rc = config_parse(&c, argc, argv);
    assert(rc == CONFIG_OK || rc == CONFIG_EXIT || rc == CONFIG_ERROR);
    if (rc == CONFIG_OK) {
        assert(c.port >= 1 && c.port <= 65535);
        assert(c.max_connections >= 1 && c.max_text >= 1 && c.max_text <= 100000);
        assert(c.rate > 0 && c.burst >= 1);
        assert(c.max_frame >= 1024 && c.max_frame <= (16 << 20));
        assert(c.hello_timeout >= 1 && c.db_queue >= 1 && c.db_batch >= 1);
        assert(c.db && c.db[0] && c.log_level && c.log_format && c.db_sync);
        assert(!strcmp(c.db_sync, "full") || !strcmp(c.db_sync, "normal"));
        assert(!c.tls_cert == !c.tls_key);
        assert(c.norigins >= 0 && c.norigins <= CONFIG_MAX_ORIGINS);
        for (int i = 0; i < c.norigins; i++) {
            assert(c.origin_list[i][0]);
            assert(config_origin_allowed(&c, c.origin_list[i]));
        }
    }
    config_free(&c);
    for (int i = 0; i < nset; i++) {
        unsetenv(set_vars[i]);
        free(set_vars[i]);
    }
    nset = 0;
    free(buf);
    return 0;
}
