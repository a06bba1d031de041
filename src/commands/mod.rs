//! One module per subcommand group.

pub mod bootstrap;
pub mod coap_args;
pub mod delta;
pub mod demo;
pub mod fec;
pub mod fetch;
pub mod gc;
pub mod keygen;
pub mod objects;
pub mod publish;
pub mod receive;
pub mod repair_serve;
pub mod scrub;
pub mod send;
pub mod serve;
pub mod session;
pub mod sim;
pub mod units;
