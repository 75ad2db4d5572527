/* mint-token.c -- `parley-token`: mints an HS256 token for Parley's hello,
 * for site owners' scripts and for tests.
 *
 *   parley-token --secret S --sub ID --name NAME [--ttl SECONDS] [--rooms a,b | --rooms
 * '*']
 *
 * The secret may come from PARLEY_JWT_SECRET instead. Prints the token. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jwt.h"
#include "protocol.h"

static int usage(void)
{
    fprintf(stderr, "usage: parley-token --secret S --sub ID --name NAME [--ttl SECONDS] "
                    "[--rooms a,b|*]\n");
    return 2;
}

/* Turns "a,b" into ["a","b"] (validated), "*" into "*". Returns malloc'd JSON. */
static char *rooms_json(const char *list)
{
    if (!strcmp(list, "*")) return strdup("\"*\"");
    char *out = malloc(strlen(list) * 3 + 3), *copy = strdup(list), *save = NULL;
    size_t o = 0;
    out[o++] = '[';
    for (char *r = strtok_r(copy, ",", &save); r; r = strtok_r(NULL, ",", &save)) {
        if (!proto_room_valid(r)) {
            fprintf(stderr, "parley-token: invalid room name '%s'\n", r);
            free(out);
            free(copy);
            return NULL;
        }
        o += (size_t)sprintf(out + o, "%s\"%s\"", o > 1 ? "," : "", r);
    }
    out[o++] = ']';
    out[o] = 0;
    free(copy);
    return out;
}

int main(int argc, char **argv)
{
    static const struct option longs[] = {
        {"secret", 1, 0, 's'}, {"sub", 1, 0, 'u'},   {"name", 1, 0, 'n'},
        {"ttl", 1, 0, 't'},    {"rooms", 1, 0, 'r'}, {0, 0, 0, 0},
    };
    const char *secret = getenv("PARLEY_JWT_SECRET"), *sub = NULL, *name = NULL,
               *rooms = NULL;
    long ttl = 3600;
    int c;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
        case 's':
            secret = optarg;
            break;
        case 'u':
            sub = optarg;
            break;
        case 'n':
            name = optarg;
            break;
        case 't':
            ttl = strtol(optarg, NULL, 10);
            break;
        case 'r':
            rooms = optarg;
            break;
        default:
            return usage();
        }
    }
    if (!secret || !*secret || !sub || !name || ttl <= 0) return usage();
    char *rj = rooms ? rooms_json(rooms) : NULL;
    if (rooms && !rj) return 2;
    char *tok =
        jwt_sign(secret, strlen(secret), sub, name, (int64_t)time(NULL) + ttl, rj);
    free(rj);
    if (!tok) return 1;
    puts(tok);
    free(tok);
    return 0;
}
