//! One module per subcommand group.

pub mod fec;
pub mod receive;
