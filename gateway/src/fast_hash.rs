//! Hash maps and sets for the per-job paths (leases, unfinished jobs, sessions, fetch demand,
//! per-queue counters), hashed with foldhash's fast hasher instead of the standard SipHash,
//! which cost about a microsecond per job: a job's jid is hashed several times on its way.
//! Each map gets its own random seed, as with the standard hasher, so colliding keys cannot
//! be made up without knowing it.

/// A `HashMap` with foldhash's randomly seeded fast hasher.
pub(crate) type Map<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// A `HashSet` with foldhash's randomly seeded fast hasher.
pub(crate) type Set<T> = std::collections::HashSet<T, foldhash::fast::RandomState>;
