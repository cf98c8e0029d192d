/* Paper key: the repository's master key as a sheet a person can print, keep in a drawer
 * and type back in after the machine and every copy of the key file are gone.
 *
 * Pure: no I/O. The exact format is in docs/PAPERKEY.md; in short, for a 32-byte key:
 *
 *     permafrost paper key v1  repo 0123456789abcdef  bytes 32  check 5MG6
 *      1: 0C51 260Z 4RPK 8ET2  5E6T
 *      2: 9585 EQK5 DHSQ N0C8  41EK
 *      3: HYB9 V95B PAWW 1HYE  SZBF
 *      4: TQE0                 3P0H
 *     total: NWFH 9J78
 *
 * The key is written in base32 with the 32 symbols 0-9 A-Z minus I, L, O and U, ten key
 * bytes (16 symbols) per numbered line. Each line ends with 4 check symbols (a Reed-Solomon
 * code over GF(32) that also covers the line number): up to four wrong characters on a
 * line, so any swap, and any dropped or extra character, are always caught and reported
 * with that line's number.
 * The header carries its own 4 check symbols; the total line is 40 bits of SHA-256 over
 * the repository id, the length and the whole key.
 */
#ifndef PF_PAPERKEY_H
#define PF_PAPERKEY_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

#define PF_PAPERKEY_KEY_MIN 32
#define PF_PAPERKEY_KEY_MAX 128
/* Repository ids: 1..64 characters from 0-9, a-z, '-' and '_'. */
#define PF_PAPERKEY_REPO_ID_MAX 64

/* Appends the sheet for key[0..len) and repo_id to out: ASCII, lines ending in "\n", no
 * trailing blank line. len must be PF_PAPERKEY_KEY_MIN..PF_PAPERKEY_KEY_MAX and repo_id a
 * valid repository id (upper-case letters are refused, since the sheet reads back in lower
 * case). The key bytes end up in out: wipe it (pf_buf_free does). Returns 0, or -1 with err
 * set (PF_EUSAGE) and out unchanged. */
int pf_paperkey_encode(const uint8_t *key, size_t len, const char *repo_id, pf_buf *out,
                       pf_err *err);

/* Reads a sheet back from text[0..len) as a person typed it. Tolerated: upper or lower
 * case; any spaces, tabs or '-' between characters of a key line; blank lines; lines
 * starting with '#'; CRLF or LF line ends; O for 0 and I or L for 1. On entry *key_len is
 * the room in key_out; on success the key is written to key_out, its length to *key_len
 * and the repository id (lower case, NUL-terminated) to repo_id_out, which has room for
 * PF_PAPERKEY_REPO_ID_MAX + 1 bytes.
 *
 * Returns 0, or -1 with err set and nothing written: PF_ECORRUPT when the sheet does not
 * check out, with a message that names the line as printed ("line 3: checksum does not
 * match: check the characters on that line", "header line: ...", "total line: ...") or
 * says what is missing ("line 4 is missing ..."); PF_EUSAGE when key_out is too small. */
int pf_paperkey_decode(const char *text, size_t len, uint8_t *key_out, size_t *key_len,
                       char *repo_id_out, pf_err *err);

#endif
