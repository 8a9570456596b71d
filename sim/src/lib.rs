//! onhold-sim: drives onhold-core on virtual time.
