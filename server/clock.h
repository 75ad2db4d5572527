/* clock.h -- the wall clock in Unix milliseconds: message and change
 * timestamps, the ends of mutes and bans, retention. One definition, so
 * every thread reads time the same way. Any thread.
 */
#ifndef PARLEY_CLOCK_H
#define PARLEY_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t wall_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

#endif
