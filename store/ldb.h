/*
 * ldb.h - what the span store and the profile store share about their LevelDB
 * databases (internal to store/; td__ prefix): creating the data directory,
 * opening a database with its cache and options, and closing it again.
 *
 * Thread-safety: td__ldb_open/close must not race with other use of the same
 * td__ldb; everything else about the handles is LevelDB's (thread-safe).
 */
#ifndef TD_STORE_LDB_H
#define TD_STORE_LDB_H

#include "core/status.h"

#include <leveldb/c.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct td__ldb {
    leveldb_t *db;
    leveldb_options_t *opts;
    leveldb_cache_t *cache;
    leveldb_readoptions_t *ropts;  /* fill_cache on */
    leveldb_writeoptions_t *wopts; /* sync as asked */
} td__ldb;

/* mkdir -p dir; TD_IO when it cannot be created or is not a directory. */
td_status td__mkdir_p(const char *dir, td_err *err);

/*
 * Open (creating if missing) the database at path with an LRU block cache of
 * cache_bytes, the given memtable size and open-file bound, snappy blocks, and
 * fsync on every write when sync. On failure everything is released and l is
 * zeroed; errors: TD_IO "cannot open <what> <path>: <LevelDB's message>".
 */
td_status td__ldb_open(td__ldb *l, const char *path, const char *what, uint64_t cache_bytes,
                       uint64_t write_buffer_bytes, int max_open_files, bool sync, td_err *err);

/* Close the database, then its options and cache (the cache last: both refer to it). */
void td__ldb_close(td__ldb *l);

#endif
