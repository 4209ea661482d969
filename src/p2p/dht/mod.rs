//! The mainline DHT (BEP 5). (in progress)

pub mod krpc;
