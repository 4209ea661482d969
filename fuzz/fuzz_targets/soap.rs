//! Invariants of the DLNA parsers on hostile bytes.
//!
//! The first byte picks the parser: SOAP action calls (`server::dlna::soap`) or SSDP
//! M-SEARCH datagrams (`server::dlna::ssdp_msg`). A call that parses is written back as an
//! envelope, its argument text escaped by the writer under test, and must parse to the same
//! call: the escaper and the parser agree. A search that parses has a target without line
//! breaks and an MX within the clamp, and bodies over the limits are always refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streme::server::dlna::soap::{self, MAX_BODY};
use streme::server::dlna::ssdp_msg::{self, MAX_DATAGRAM, MAX_MX};
use streme::server::dlna::xml;

const ACTION: &str = "\"urn:schemas-upnp-org:service:ContentDirectory:1#Browse\"";

fn envelope(call: &soap::Call) -> String {
    let mut args = String::new();
    for (name, value) in &call.args {
        xml::element(&mut args, name, value);
    }
    format!(
        "<?xml version=\"1.0\"?><s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body>\
         <u:{0} xmlns:u=\"{1}\">{args}</u:{0}></s:Body></s:Envelope>",
        call.action, call.service
    )
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    if which % 2 == 0 {
        if let Ok(call) = soap::parse_call(Some(ACTION), rest) {
            assert!(rest.len() <= MAX_BODY);
            assert_eq!(call.action, "Browse");
            let again = envelope(&call);
            // Escaping grows the text; a call that no longer fits is refused, as it should be.
            if again.len() <= MAX_BODY {
                let back = soap::parse_call(Some(ACTION), again.as_bytes())
                    .unwrap_or_else(|e| panic!("re-encoded call fails: {e}\n{again}"));
                assert_eq!(back.args.len(), call.args.len());
                for ((n1, v1), (n2, v2)) in call.args.iter().zip(&back.args) {
                    assert_eq!(n1, n2);
                    // The writer drops characters XML forbids; compare what it carries.
                    assert_eq!(xml::escape(v1), xml::escape(v2));
                }
            }
        }
    } else if let Ok(search) = ssdp_msg::parse_search(rest) {
        assert!(rest.len() <= MAX_DATAGRAM);
        assert!(search.mx <= MAX_MX);
        assert!(!search.target.is_empty());
        assert!(!search.target.contains(['\r', '\n']));
    }
});
