//! Magnet links (BEP 9 `magnet:?xt=urn:btih:...`) and bare info hashes.
