/* json.h -- the one way the server parses JSON: cJSON, one parse at a time.
 *
 * Every cJSON parse writes the library's static error position (global_error
 * in cJSON 1.7.15, Debian 12's libcjson), on success too and also through
 * cJSON_ParseWithOpts with a local end pointer (checked: cJSON_GetErrorPtr()
 * changes after it). Parses on several event-loop threads at once would be a
 * data race, so every parse in server/ goes through json_parse(). */
#ifndef PARLEY_JSON_H
#define PARLEY_JSON_H

#include <stddef.h>
#include <cjson/cJSON.h>

/* Parses data[0..len) (need not be NUL-terminated). Returns a new tree (free
 * with cJSON_Delete) or NULL when it is not JSON. Thread-safe. */
cJSON *json_parse(const char *data, size_t len);
/* As json_parse, but NULL also when anything but whitespace follows the
 * value (an HTTP body is one JSON text, RFC 8259). */
cJSON *json_parse_all(const char *data, size_t len);

#endif
