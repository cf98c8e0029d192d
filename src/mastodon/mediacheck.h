/* Does the media match the database? Mastodon's database names every file it needs under
 * public/system; a backup holds the database and the media in one snapshot, so it can say
 * whether they agree.
 *
 * Paths follow Paperclip as Mastodon configures it (config/initializers/paperclip.rb):
 *   [cache/]:class/:attachment/:id_partition/:style/:filename
 * with cache/ for a record that is not local and whose <attachment>_storage_schema_version
 * is >= 1 (older remote files live outside cache/). The id partition is the id printed
 * with at least 9 digits below 1e9 and at least 12 above, cut in groups of 3, a trailing
 * partial group dropped (kt-paperclip's id_partition).
 *
 * Only the `original` style is referenced: which other styles exist depends on the file's
 * content type and on Mastodon's version (small/ for images and video, static/ for GIF
 * avatars and emoji, a dozen for site uploads), so a check of them could only guess.
 *
 * Use: pf_mediacheck_new; pf_mediacheck_add_ref for every referenced file (or
 * pf_mediacheck_query inside the dump's transaction); pf_mediacheck_seal; then
 * pf_mediacheck_add_present for every regular file of the stored media tree; then
 * pf_mediacheck_result. Memory: every referenced path is held (about its length + 24
 * bytes: 100 MB for a million attachments with long names); present files are not. */
#ifndef PF_MASTODON_MEDIACHECK_H
#define PF_MASTODON_MEDIACHECK_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/err.h"
#include "repo/snapshot.h"

/* Paperclip's id partition of `id` into out ("000/000/123", "109/347/892/451/840/001").
 * Returns 0, or -1 when out is too small. */
int pf_paperclip_partition(uint64_t id, char *out, size_t n);

/* The relative path of an attachment's original file: cache/ when `cached`.
 * E.g. ("accounts", "avatars", 1, "a.png") -> "accounts/avatars/000/000/001/original/a.png".
 * Returns 0, or -1 when out is too small. */
int pf_paperclip_path(bool cached, const char *klass, const char *attachment, uint64_t id,
                      const char *filename, char *out, size_t n);

typedef struct pf_mediacheck pf_mediacheck;

/* exclude_cache: cache/ is not stored, so its referenced files are counted as excluded,
 * not missing. Aborts on out-of-memory, as pf_buf does. */
pf_mediacheck *pf_mediacheck_new(bool exclude_cache);
void pf_mediacheck_free(pf_mediacheck *mc);

/* One referenced file, relative to the media root ("cache/..." for a cached remote one).
 * `created` is the record's creation (Unix seconds, 0 when unknown; pf_mediacheck_query
 * gives a media attachment the time its snowflake id encodes, which is what `tootctl media
 * refresh --days` compares): the oldest absent cached attachment says how far back the
 * refetch must go. */
void pf_mediacheck_add_ref(pf_mediacheck *mc, pf_media_kind kind, const char *relpath,
                           int64_t created);
/* Ends the references: must come before the first pf_mediacheck_add_present. */
void pf_mediacheck_seal(pf_mediacheck *mc);
/* One regular file of the stored media tree, relative to the media root. */
void pf_mediacheck_add_present(pf_mediacheck *mc, const char *relpath);
/* The comparison, into *out (which the caller frees with pf_media_check_free). Missing
 * samples are the first missing paths in byte order. */
void pf_mediacheck_result(const pf_mediacheck *mc, pf_media_check *out);

/* Streams the referenced files of Mastodon's database into mc, through a cursor fetched
 * a bounded number of rows at a time, on `conn`, which is inside the REPEATABLE READ
 * transaction whose snapshot pg_dump uses: the references are those of the dumped rows.
 * Tables and columns that this database lacks (older Mastodon versions) are left out;
 * what the query runs in is a savepoint, so a failure leaves the transaction usable.
 * Returns 0, or -1 with err (PF_ECOMPONENT "media check: ..."). */
int pf_mediacheck_query(PGconn *conn, pf_mediacheck *mc, pf_err *err);

/* The hook for pf_pg_dump_opts.in_snapshot (ctx: the pf_mediacheck): runs
 * pf_mediacheck_query, and when it fails warns and records why in the check (the result
 * then has only `error`) instead of failing the dump: a backup is not lost because the
 * check could not be made. Returns 0. */
int pf_mediacheck_in_snapshot(PGconn *conn, void *ctx, pf_err *err);
/* The archiver's visit callback (ctx: the pf_mediacheck) for the media walk: seals the
 * references on the first call, then pf_mediacheck_add_present. */
void pf_mediacheck_visit(const char *rel, void *ctx);

/* One line for a backup that is incomplete because of it: NULL when nothing local is
 * missing; else malloc'd "N media files the database references are missing from the
 * media directory (first: a, b, ...)". */
char *pf_mediacheck_missing_line(const pf_media_check *m);

/* The lines `check` and `ls` print about a snapshot's media check, each starting with
 * `indent`. */
void pf_mediacheck_print(const pf_media_check *m, const char *indent, FILE *out);

/* After a restore without the cache (taken with --exclude-cache, or its files missing):
 * the tootctl commands that refetch the remote files, with how many files each concerns,
 * as lines starting with `indent`. `now` is the current Unix time (the --days of media
 * refresh reaches back to the oldest cached attachment). Prints nothing when no remote
 * file needs fetching. Returns the number of lines printed. */
int pf_mediacheck_refetch_advice(const pf_media_check *m, int64_t now, const char *indent,
                                 FILE *out);

#endif
