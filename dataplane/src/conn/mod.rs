//! Placeholder: the connection table is being written.
