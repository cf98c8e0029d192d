/* Errors: functions return 0 / -1 (or a pointer / NULL) and fill a caller's pf_err.
 * The message gains context on the way up with pf_err_prefix():
 * "backup: postgres: pg_dump exited 1: connection refused". */
#ifndef PF_ERR_H
#define PF_ERR_H

#include <stdbool.h>

/* The values travel in the repository server protocol (docs/PROTOCOL.md): new codes go at
 * the end. */
enum pf_errcode {
    PF_OK = 0,
    PF_EGENERIC = 1, /* anything else */
    PF_EUSAGE,       /* bad command line or config */
    PF_ENOTFOUND,    /* object, file or snapshot does not exist */
    PF_EEXIST,       /* would overwrite something that exists */
    PF_EIO,          /* local or remote I/O failure */
    PF_ECORRUPT,     /* data failed authentication or decoding */
    PF_EAUTH,        /* wrong passphrase, credentials or key */
    PF_ENOREPO,      /* path or URL is not a permafrost repository */
    PF_ELOCKED,      /* repository locked by another process */
    PF_ECOMPONENT,   /* a Mastodon component (database, redis, ...) failed */
    PF_EINCOMPLETE,  /* finished, but some source files could not be read */
    PF_ECONN,        /* could not connect to a server */
    PF_EREFUSED,     /* the server refuses it: an append-only repository server */
};

typedef struct pf_err {
    int code;       /* enum pf_errcode */
    int sys_errno;  /* errno when a system call failed, else 0 */
    bool retryable; /* a transient failure that the retry layer may try again */
    char msg[1024];
} pf_err;

/* Sets code and message; always returns -1 so callers can `return pf_err_set(...)`. */
int pf_err_set(pf_err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* As pf_err_set, appending ": strerror(errno)" and recording errno. */
int pf_err_sys(pf_err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Prepends "context: " to the message. Returns -1. */
int pf_err_prefix(pf_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void pf_err_clear(pf_err *e);

#endif
