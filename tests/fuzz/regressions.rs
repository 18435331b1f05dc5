//! Inputs the fuzzers found failing, kept as plain unit tests (the seeds are also kept in
//! `fuzz/regressions/`).
