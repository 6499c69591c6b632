"""`ossa backup` and `ossa restore`: the spec's disaster recovery, in one archive.

    ossa backup [--data-dir DIR] [--out DIR] [--upload DIR]
    ossa restore ARCHIVE [--data-dir DIR]

`backup` works on a running platform (its servers, from the same OSSA_* settings as `ossa up`) or
a stopped one (the data directory's servers, started on free ports meanwhile). It writes
`<out>/ossa-backup-<UTC timestamp>.tar.gz` (0600) holding:

    manifest.json                 versions, row/key/point counts, size and sha256 of every member
    postgres/ossa_isolated.dump   pg_dump --format=custom
    redis/dump.rdb                the RDB snapshot (replication SYNC, as `redis-cli --rdb`)
    qdrant/<collection>/...       the embedded shards' files (or qdrant/<collection>.jsonl from a server)
    secrets/jwt.secret            the data directory's JWT key, if any (tokens stay valid after a restore)

and copies it to --upload / OSSA_BACKUP_UPLOAD_DIR when set. The archive's path is the last line
on stdout. `restore` refuses a running platform, reads the whole archive and checks every
member's checksum before touching anything, then restores each store (into an empty data
directory too) and checks the restored row, key and point counts against the manifest.

Exit codes: 0 done, 1 a step failed (the message says which), 2 bad arguments, a corrupt archive,
or a running platform.

Modules: `command` (the two commands), `archive` (members, manifest, checksums), `stores`
(PostgreSQL and Redis); the vectors' export and import are ossa_search.snapshot.
"""
