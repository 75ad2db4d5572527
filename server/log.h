/* log.h -- one line per significant event, to stderr, with a level; text or
 * JSON (for log collectors). Any thread; each line is one write(2). */
#ifndef PARLEY_LOG_H
#define PARLEY_LOG_H

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Sets the threshold ("error".."debug") and the format ("text"/"json"). */
void log_init(const char *level, const char *format);
int log_enabled(enum log_level lv);
/* Logs `event` with a printf-style detail in key=value form. */
void plog(enum log_level lv, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
