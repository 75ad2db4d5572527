/* log.c -- leveled, single-write log lines in text or JSON. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum log_level threshold = LOG_INFO; /* set before threads start */
static int json;                            /* likewise */
static const char *const names[] = {"error", "warn", "info", "debug"};

void log_init(const char *level, const char *format)
{
    for (int i = 0; i < 4; i++)
        if (level && !strcmp(level, names[i])) threshold = (enum log_level)i;
    json = format && !strcmp(format, "json");
}

int log_enabled(enum log_level lv)
{
    return lv <= threshold;
}

/* Appends s to out as JSON string content (no quotes). */
static size_t json_escape(char *out, size_t cap, const char *s)
{
    size_t o = 0;
    for (; *s && o + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            out[o++] = '\\', out[o++] = (char)c;
        else if (c < 0x20)
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", c);
        else
            out[o++] = (char)c;
    }
    out[o] = 0;
    return o;
}

/* Copies s to out with its control characters as \xNN: a logged value
 * (a user id, a message's text at debug) cannot end the line and forge
 * the next one. */
static void text_escape(char *out, size_t cap, const char *s)
{
    size_t o = 0;
    for (; *s && o + 5 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f)
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
        else
            out[o++] = (char)c;
    }
    out[o] = 0;
}

void plog(enum log_level lv, const char *event, const char *fmt, ...)
{
    if (lv > threshold) return;
    char detail[1024], line[2400], when[32];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t w = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + w, sizeof when - w, ".%03ldZ", ts.tv_nsec / 1000000);
    int n;
    if (json) {
        char esc[2048];
        json_escape(esc, sizeof esc, detail);
        n = snprintf(
            line, sizeof line,
            "{\"ts\":\"%s\",\"level\":\"%s\",\"event\":\"%s\",\"detail\":\"%s\"}\n", when,
            names[lv], event, esc);
    } else {
        char esc[2048];
        text_escape(esc, sizeof esc, detail);
        n = snprintf(line, sizeof line, "%s %-5s %s %s\n", when, names[lv], event, esc);
    }
    if (n > (int)sizeof line - 1) n = (int)sizeof line - 1, line[n - 1] = '\n';
    ssize_t ignored = write(STDERR_FILENO, line, (size_t)n);
    (void)ignored;
}
