//! Bencode, parsed with nom into borrowed values that keep their raw spans.
