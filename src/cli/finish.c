#include "cli/finish.h"

#include <string.h>

#include "cli/cli.h"

void pf_shell_quote(pf_buf *out, const char *w)
{
    if (*w && strspn(w, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                        "-_./=:,@+%") == strlen(w)) {
        pf_buf_append_str(out, w);
        return;
    }
    pf_buf_append_str(out, "'");
    for (const char *p = w; *p; p++) {
        if (*p == '\'')
            pf_buf_append_str(out, "'\\''");
        else
            pf_buf_append(out, p, 1);
    }
    pf_buf_append_str(out, "'");
}

static void opt(pf_buf *b, const char *name, const char *value)
{
    if (!value)
        return;
    pf_buf_printf(b, " %s ", name);
    pf_shell_quote(b, value);
}

char *pf_restore_finish_command(const char *id, char *const *args, int n, int ref_index,
                                const char *only, bool force)
{
    pf_buf b = PF_BUF_INIT;
    pf_buf_append_str(&b, "permafrost");
    opt(&b, "--repo", pf_g.repo_url);
    opt(&b, "--config", pf_g.config_file);
    opt(&b, "--ssh-key", pf_g.store_opts.ssh_key);
    pf_buf_append_str(&b, " restore ");
    pf_shell_quote(&b, id);
    for (int i = 0; i < n; i++) {
        if (i == ref_index || !strcmp(args[i], "--force") || !strncmp(args[i], "--only=", 7))
            continue;
        if (!strcmp(args[i], "--only")) {
            i++;
            continue;
        }
        pf_buf_append_str(&b, " ");
        pf_shell_quote(&b, args[i]);
    }
    pf_buf_append_str(&b, " --only ");
    pf_shell_quote(&b, only);
    if (force)
        pf_buf_append_str(&b, " --force");
    return (char *)pf_buf_detach(&b, NULL);
}

void pf_restore_finish_print(FILE *out, const char *failed, const char *restored, const char *left,
                             const char *command)
{
    fprintf(out, "permafrost: restore stopped in the %s step: restored: %s; not restored: %s\n",
            failed, *restored ? restored : "nothing", *left ? left : "nothing");
    fprintf(out, "permafrost: to finish, run:\n  %s\n", command);
}
