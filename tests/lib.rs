//! Nothing here: the end-to-end tests live in `suite.rs` (one test binary, a module per area).
