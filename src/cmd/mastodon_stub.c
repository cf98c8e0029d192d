#include <stdio.h>

#include "cli/cli.h"

int cmd_backup_mastodon(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "permafrost: --live is not available yet\n");
    return PF_EXIT_USAGE;
}

int cmd_restore_mastodon(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "permafrost: --live is not available yet\n");
    return PF_EXIT_USAGE;
}
