//! The `dms` command line.
fn main() {}
