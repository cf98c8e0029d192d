/* Who owns Mastodon's files on this machine, and directories given to them. Restoring as
 * root must leave what Mastodon's user writes into later (git checkout, uploads, the
 * secrets file) owned by that user, never by root. */
#ifndef PF_COMPONENT_OWNER_H
#define PF_COMPONENT_OWNER_H

#include <sys/types.h>

#include "repo/tree.h"

typedef struct pf_app_owner {
    uid_t uid;
    gid_t gid;
    char name[64]; /* for messages: the user name, else "uid N" */
} pf_app_owner;

/* The owner of live, else of its parent (the install guide's /home/mastodon), when that
 * is not root; else the OS user of the name `recorded` carries (the snapshot's
 * .env.production; NULL: none); else the recorded ids. */
void pf_app_owner_find(const char *live, const pf_node *recorded, pf_app_owner *o);

/* Gives an existing directory (never through a symlink) to o, and mode when non-zero. A
 * failure is a warning: the restore itself is complete. */
void pf_app_owner_give_dir(const char *path, const pf_app_owner *o, mode_t mode);

/* mkdir -p path, 0755; the directories it creates are given to o (NULL: left as created).
 * Returns 0, or -1 with errno set. */
int pf_app_owner_mkdirs(const char *path, const pf_app_owner *o);

#endif
