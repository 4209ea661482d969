//! The mainline DHT (BEP 5). (in progress)

pub mod krpc;
pub mod table;
pub mod limit;
pub mod peers;
pub mod token;
