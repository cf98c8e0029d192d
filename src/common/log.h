/* Messages to the operator. Library code reports through these; the CLI decides where
 * they go (stderr, quiet, verbose) by installing a handler. Never pass secrets. */
#ifndef PF_LOG_H
#define PF_LOG_H

enum pf_log_level { PF_LOG_ERROR, PF_LOG_WARN, PF_LOG_INFO, PF_LOG_DEBUG };

typedef void (*pf_log_fn)(int level, const char *msg);

void pf_log_set_handler(pf_log_fn fn);
void pf_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define pf_warn(...) pf_log(PF_LOG_WARN, __VA_ARGS__)
#define pf_info(...) pf_log(PF_LOG_INFO, __VA_ARGS__)
#define pf_debug(...) pf_log(PF_LOG_DEBUG, __VA_ARGS__)

#endif
