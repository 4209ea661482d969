//! Invariant: a magnet we accept survives `to_uri` unchanged, unless its
//! escaped form outgrows the length limit, and then it is refused as too long.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streme::format::magnet::{Magnet, MagnetError, MAX_MAGNET_LEN};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(magnet) = Magnet::parse(text) else {
        return;
    };
    let uri = magnet.to_uri();
    match Magnet::parse(&uri) {
        Ok(again) => assert_eq!(again, magnet, "{uri}"),
        Err(MagnetError::TooLong { len, .. }) => assert!(len > MAX_MAGNET_LEN),
        Err(e) => panic!("our own uri {uri:?} was refused: {e}"),
    }
});
