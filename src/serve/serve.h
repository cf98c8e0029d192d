/* `permafrost serve`: a repository server on stdin/stdout, run by sshd (usually as a forced
 * command in authorized_keys) for the ssh:// store. It speaks the protocol of store/proto.h
 * and keeps the repository with the local driver.
 *
 * - The client names the repository in its HELLO. A path with a ".." component is refused;
 *   with restrict_to, the path (after resolving the symbolic links of the part that exists)
 *   must be restrict_to or beneath it, and no key may pass through a symbolic link (keys
 *   are opened component by component with O_NOFOLLOW), so the client can reach nothing
 *   outside that directory.
 * - With append_only, nothing is removed or replaced but lock objects ("locks/<64 hex>"):
 *   remove and sweep are refused (PF_EREFUSED); a put of an existing key succeeds only
 *   when the bytes are the same (a retried put), else it is refused; a put of a new key is
 *   created atomically without replacing (RENAME_NOREPLACE). HELLO_OK tells the client, so
 *   that forget and prune fail before they start.
 * - A frame that breaks the protocol ends the session (after an ERR saying why); an
 *   operation that fails is an ERR reply and the session goes on. */
#ifndef PF_SERVE_H
#define PF_SERVE_H

#include <stdbool.h>

#include "common/err.h"

typedef struct pf_serve_opts {
    bool append_only;
    const char *restrict_to; /* a directory, or NULL: any path the OS lets us reach */
} pf_serve_opts;

/* Serves one client until it says BYE or its input ends: 0. A protocol violation, a
 * refused HELLO or an I/O failure on the connection: -1 with err. */
int pf_serve(int in_fd, int out_fd, const pf_serve_opts *o, pf_err *err);

#endif
