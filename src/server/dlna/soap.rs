//! SOAP requests of UPnP control: the `SOAPACTION` header and the envelope,
//! parsed strictly, and the envelopes we answer with.
//!
//! # Design
//! A UPnP action call is always the same shape: `Envelope > Body > action >
//! arguments`, where each argument holds only text. So the parser is a small
//! nom grammar for exactly that subset of XML: an optional `<?xml?>`
//! declaration, elements with attributes, text with the predefined entities.
//! Anything else (a DOCTYPE, and with it every entity-expansion attack;
//! CDATA; comments; processing instructions inside; elements nested deeper
//! than [`MAX_DEPTH`]) is an error naming what was found. The body is capped at
//! [`MAX_BODY`] before parsing, and the argument count at [`MAX_ARGS`], so a
//! request costs at most a few KiB.
//!
//! Pure: no I/O. Fuzzed by `fuzz/fuzz_targets/soap.rs`.

use std::fmt::Write;

use nom::branch::alt;
use nom::bytes::complete::{tag, take_till, take_until, take_while, take_while1};
use nom::character::complete::{char, multispace0};
use nom::combinator::{opt, recognize};
use nom::sequence::delimited;
use nom::{IResult, Parser};

use super::xml::{self, escape};

/// The largest request body read. A Browse call is about 600 bytes; Samsung's
/// and Windows' are under 2 KiB.
pub const MAX_BODY: usize = 16 * 1024;
/// Envelope (1) > Body (2) > action (3) > argument (4).
const MAX_DEPTH: usize = 4;
/// Browse has six arguments; no action we serve has more than that.
const MAX_ARGS: usize = 16;

/// A parsed action call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// `urn:schemas-upnp-org:service:ContentDirectory:1`, from the header.
    pub service: String,
    /// `Browse`.
    pub action: String,
    /// The arguments in order, unescaped.
    pub args: Vec<(String, String)>,
}

impl Call {
    /// The argument `name`, if the call has it.
    pub fn arg(&self, name: &str) -> Option<&str> {
        self.args
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why a request is not a well-formed action call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SoapError {
    /// No `SOAPACTION` header.
    NoSoapAction,
    /// The header is not `"service-type#action"`.
    BadSoapAction(String),
    /// The body is over [`MAX_BODY`].
    TooLarge { limit: usize },
    /// The body is not UTF-8.
    NotUtf8,
    /// The body is not the subset of XML a SOAP call uses; says what was met.
    BadXml(String),
    /// Well-formed, but not `Envelope > Body > action`.
    BadEnvelope(&'static str),
    /// The header names one action and the body another.
    ActionMismatch { header: String, body: String },
}

impl std::fmt::Display for SoapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SoapError::NoSoapAction => write!(f, "no SOAPACTION header"),
            SoapError::BadSoapAction(h) => {
                write!(
                    f,
                    "SOAPACTION {h:?} is not \"urn:...:service:Name:1#Action\""
                )
            }
            SoapError::TooLarge { limit } => write!(f, "SOAP body over {limit} bytes"),
            SoapError::NotUtf8 => write!(f, "SOAP body is not UTF-8"),
            SoapError::BadXml(what) => write!(f, "SOAP body is not well-formed: {what}"),
            SoapError::BadEnvelope(what) => write!(f, "not a SOAP action call: {what}"),
            SoapError::ActionMismatch { header, body } => {
                write!(f, "SOAPACTION names {header} but the body calls {body}")
            }
        }
    }
}

/// Reads `"urn:schemas-upnp-org:service:ContentDirectory:1#Browse"` (quotes
/// optional, as some TVs drop them) into the service type and the action.
pub fn parse_soap_action(header: &str) -> Result<(String, String), SoapError> {
    let bad = || SoapError::BadSoapAction(header.chars().take(200).collect());
    let h = header.trim();
    let h = h
        .strip_prefix('"')
        .and_then(|h| h.strip_suffix('"'))
        .unwrap_or(h);
    let (service, action) = h.split_once('#').ok_or_else(bad)?;
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 128
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_:.-".contains(&b))
    };
    if !service.starts_with("urn:") || !name_ok(service) || !name_ok(action) || action.contains(':')
    {
        return Err(bad());
    }
    Ok((service.to_string(), action.to_string()))
}

/// Parses a call from its `SOAPACTION` header and body.
pub fn parse_call(soap_action: Option<&str>, body: &[u8]) -> Result<Call, SoapError> {
    let (service, action) = parse_soap_action(soap_action.ok_or(SoapError::NoSoapAction)?)?;
    if body.len() > MAX_BODY {
        return Err(SoapError::TooLarge { limit: MAX_BODY });
    }
    let text = std::str::from_utf8(body).map_err(|_| SoapError::NotUtf8)?;
    let root = parse_document(text)?;
    if local(&root.name) != "Envelope" {
        return Err(SoapError::BadEnvelope("the root element is not Envelope"));
    }
    let body_el = root
        .children
        .iter()
        .find(|c| local(&c.name) == "Body")
        .ok_or(SoapError::BadEnvelope("Envelope has no Body"))?;
    let [call] = body_el.children.as_slice() else {
        return Err(SoapError::BadEnvelope("Body must hold exactly one action"));
    };
    if local(&call.name) != action {
        return Err(SoapError::ActionMismatch {
            header: action,
            body: local(&call.name).to_string(),
        });
    }
    let mut args = Vec::with_capacity(call.children.len());
    for arg in &call.children {
        if !arg.children.is_empty() {
            return Err(SoapError::BadEnvelope("an argument holds elements"));
        }
        args.push((local(&arg.name).to_string(), arg.text.clone()));
    }
    Ok(Call {
        service,
        action,
        args,
    })
}

/// One element: its qualified name, its text (only kept for leaves) and children.
#[derive(Debug)]
struct Element {
    name: String,
    text: String,
    children: Vec<Element>,
}

/// The part of a qualified name after its prefix.
fn local(name: &str) -> &str {
    name.rsplit_once(':').map_or(name, |(_, l)| l)
}

fn parse_document(text: &str) -> Result<Element, SoapError> {
    let bad = |what: String| SoapError::BadXml(what);
    let (rest, _) = prolog(text).map_err(|_| bad("a bad <?xml?> declaration".into()))?;
    let mut budget = MAX_ARGS * 2 + 8;
    let (rest, root) = element(rest, 1, &mut budget).map_err(|e| match e {
        nom::Err::Failure(f) | nom::Err::Error(f) => bad(describe(text, f.input)),
        nom::Err::Incomplete(_) => bad("it ends early".into()),
    })?;
    if !rest.trim().is_empty() {
        return Err(bad(describe(text, rest)));
    }
    Ok(root)
}

/// "what stands at byte N", for an error.
fn describe(whole: &str, at: &str) -> String {
    let offset = whole.len() - at.len();
    let snippet: String = at.chars().take(24).collect();
    // The element parser stops after the `<` it consumed.
    let markup = at.strip_prefix('<').unwrap_or(at);
    if markup.starts_with("!DOCTYPE") || markup.starts_with("!ENTITY") {
        format!("a DTD at byte {offset} (not allowed)")
    } else if markup.starts_with('!') {
        format!("CDATA or a comment at byte {offset} (not allowed)")
    } else if at.is_empty() {
        "it ends early".into()
    } else {
        format!("unexpected {snippet:?} at byte {offset}")
    }
}

type Res<'a, T> = IResult<&'a str, T>;

/// Optional BOM, `<?xml ... ?>`, and blanks.
fn prolog(i: &str) -> Res<'_, ()> {
    let (i, _) = opt(tag("\u{feff}")).parse(i)?;
    let (i, _) = multispace0(i)?;
    let (i, _) = opt(delimited(tag("<?xml"), take_until("?>"), tag("?>"))).parse(i)?;
    let (i, _) = multispace0(i)?;
    Ok((i, ()))
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | ':' | '-' | '.')
}

fn name(i: &str) -> Res<'_, &str> {
    let (i, n) = take_while1(is_name_char).parse(i)?;
    if n.len() > 128 {
        return Err(nom::Err::Failure(nom::error::Error::new(
            i,
            nom::error::ErrorKind::TooLarge,
        )));
    }
    Ok((i, n))
}

/// ` name="value"` or `name='value'`; values are only checked, never kept:
/// namespaces are matched by local name.
fn attribute(i: &str) -> Res<'_, ()> {
    let (i, _) = take_while1(char::is_whitespace).parse(i)?;
    let (i, _) = name(i)?;
    let (i, _) = (multispace0, char('='), multispace0).parse(i)?;
    let (i, value) = alt((
        delimited(char('"'), take_till(|c| c == '"' || c == '<'), char('"')),
        delimited(char('\''), take_till(|c| c == '\'' || c == '<'), char('\'')),
    ))
    .parse(i)?;
    xml::unescape(value).map_err(|_| fail(i))?;
    Ok((i, ()))
}

fn fail(i: &str) -> nom::Err<nom::error::Error<&str>> {
    nom::Err::Failure(nom::error::Error::new(i, nom::error::ErrorKind::Verify))
}

/// An element and everything inside it, `depth` levels down, drawing on an
/// element budget so that a wide body cannot cost more than a deep one.
fn element<'a>(i: &'a str, depth: usize, budget: &mut usize) -> Res<'a, Element> {
    if depth > MAX_DEPTH || *budget == 0 {
        return Err(fail(i));
    }
    *budget -= 1;
    let (i, _) = char('<').parse(i)?;
    let (i, qname) = name(i).map_err(|_| fail(i))?;
    let mut i = i;
    loop {
        match attribute(i) {
            Ok((rest, ())) => i = rest,
            Err(nom::Err::Error(_)) => break,
            Err(e) => return Err(e),
        }
    }
    let (i, _) = multispace0(i)?;
    if let Ok((i, _)) = tag::<_, _, nom::error::Error<&str>>("/>").parse(i) {
        return Ok((
            i,
            Element {
                name: qname.to_string(),
                text: String::new(),
                children: Vec::new(),
            },
        ));
    }
    let (mut i, _) = char::<_, nom::error::Error<&str>>('>')
        .parse(i)
        .map_err(|_| fail(i))?;
    let mut text = String::new();
    let mut children = Vec::new();
    loop {
        let (rest, chunk) = take_while(|c| c != '<').parse(i)?;
        if !chunk.is_empty() {
            let chunk = xml::unescape(chunk).map_err(|_| fail(i))?;
            // Text beside elements is only indentation; the text of a leaf is its value.
            if text.len() + chunk.len() > MAX_BODY {
                return Err(fail(i));
            }
            text.push_str(&chunk);
        }
        i = rest;
        if i.starts_with("</") {
            let (rest, close) = recognize((tag("</"), name, multispace0, char('>')))
                .parse(i)
                .map_err(|_: nom::Err<nom::error::Error<&str>>| fail(i))?;
            let closed = close[2..].trim_end_matches('>').trim_end();
            if closed != qname {
                return Err(fail(i));
            }
            if children.len() > MAX_ARGS {
                return Err(fail(i));
            }
            let text = if children.is_empty() {
                text
            } else {
                String::new()
            };
            return Ok((
                rest,
                Element {
                    name: qname.to_string(),
                    text,
                    children,
                },
            ));
        }
        if i.starts_with("<!") || i.starts_with("<?") || i.is_empty() {
            return Err(fail(i));
        }
        let (rest, child) = element(i, depth + 1, budget)?;
        children.push(child);
        i = rest;
    }
}

/// The envelope of a successful answer: `<u:{action}Response>` with `out`
/// arguments, each escaped.
pub fn response(service: &str, action: &str, out: &[(&str, &str)]) -> String {
    let mut body = String::with_capacity(512);
    let _ = write!(
        body,
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
         <s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" \
         s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body>\
         <u:{action}Response xmlns:u=\"{}\">",
        escape(service)
    );
    for (name, value) in out {
        xml::element(&mut body, name, value);
    }
    let _ = write!(body, "</u:{action}Response></s:Body></s:Envelope>");
    body
}

/// The envelope of a UPnP error (`401 Invalid Action`, `402 Invalid Args`,
/// `701 No such object`...).
pub fn fault(code: u16, description: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
         <s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" \
         s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body><s:Fault>\
         <faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail>\
         <UPnPError xmlns=\"urn:schemas-upnp-org:control-1-0\"><errorCode>{code}</errorCode>\
         <errorDescription>{}</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>",
        escape(description)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const CD: &str = "\"urn:schemas-upnp-org:service:ContentDirectory:1#Browse\"";

    fn browse(args: &str) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" s:encodingStyle='http://schemas.xmlsoap.org/soap/encoding/'>\n  <s:Body>\n    <u:Browse xmlns:u=\"urn:schemas-upnp-org:service:ContentDirectory:1\">{args}</u:Browse>\n  </s:Body>\n</s:Envelope>\n"
        )
    }

    #[test]
    fn reads_a_browse_call() {
        let body = browse("<ObjectID>0</ObjectID><BrowseFlag>BrowseDirectChildren</BrowseFlag><Filter>*</Filter><StartingIndex>0</StartingIndex><RequestedCount>10</RequestedCount><SortCriteria/>");
        let call = parse_call(Some(CD), body.as_bytes()).unwrap();
        assert_eq!(
            call.service,
            "urn:schemas-upnp-org:service:ContentDirectory:1"
        );
        assert_eq!(call.action, "Browse");
        assert_eq!(call.arg("ObjectID"), Some("0"));
        assert_eq!(call.arg("RequestedCount"), Some("10"));
        assert_eq!(call.arg("SortCriteria"), Some(""));
        assert_eq!(call.args.len(), 6);
    }

    #[test]
    fn unescapes_argument_text() {
        let body = browse("<ObjectID>a &amp; &lt;b&gt; &#x6771;</ObjectID>");
        let call = parse_call(Some(CD), body.as_bytes()).unwrap();
        assert_eq!(call.arg("ObjectID"), Some("a & <b> 東"));
    }

    #[test]
    fn rejects_what_a_call_never_holds() {
        let err =
            |header: Option<&str>, body: &str| parse_call(header, body.as_bytes()).unwrap_err();
        assert_eq!(err(None, &browse("")), SoapError::NoSoapAction);
        assert!(matches!(
            err(Some("Browse"), &browse("")),
            SoapError::BadSoapAction(_)
        ));
        let dtd = format!("<!DOCTYPE x [<!ENTITY a \"aaaa\">]>{}", browse(""));
        assert!(
            err(Some(CD), &dtd).to_string().contains("DTD"),
            "{}",
            err(Some(CD), &dtd)
        );
        let cdata = browse("<ObjectID><![CDATA[0]]></ObjectID>");
        assert!(err(Some(CD), &cdata).to_string().contains("CDATA"));
        let deep = browse("<ObjectID><a>0</a></ObjectID>");
        assert!(matches!(
            err(Some(CD), &deep),
            SoapError::BadXml(_) | SoapError::BadEnvelope(_)
        ));
        let unclosed = browse("<ObjectID>0</ObjectId>");
        assert!(matches!(err(Some(CD), &unclosed), SoapError::BadXml(_)));
        let big = browse(&"<A>1</A>".repeat(3000));
        assert_eq!(err(Some(CD), &big), SoapError::TooLarge { limit: MAX_BODY });
        let wide = browse(&"<A>1</A>".repeat(40));
        assert!(matches!(err(Some(CD), &wide), SoapError::BadXml(_)));
        let other = "\"urn:schemas-upnp-org:service:ContentDirectory:1#Search\"";
        assert!(matches!(
            err(Some(other), &browse("")),
            SoapError::ActionMismatch { .. }
        ));
        assert_eq!(
            err(Some(CD), "\u{0}\u{ff}"),
            SoapError::BadXml("unexpected \"\\0ÿ\" at byte 0".into())
        );
        assert!(matches!(
            parse_call(Some(CD), &[0xff, 0xfe]),
            Err(SoapError::NotUtf8)
        ));
        assert!(matches!(err(Some(CD), "<a>"), SoapError::BadXml(_)));
        assert!(matches!(err(Some(CD), "<a/>"), SoapError::BadEnvelope(_)));
        assert!(matches!(
            err(Some(CD), &browse("<x>&bogus;</x>")),
            SoapError::BadXml(_)
        ));
    }

    #[test]
    fn answers_escape_their_values() {
        let r = response(
            "urn:x:service:ContentDirectory:1",
            "Browse",
            &[("Result", "<DIDL-Lite>&")],
        );
        assert!(r.contains("<Result>&lt;DIDL-Lite&gt;&amp;</Result>"));
        assert!(r.contains("<u:BrowseResponse xmlns:u=\"urn:x:service:ContentDirectory:1\">"));
        let f = fault(701, "no object <x>");
        assert!(f.contains("<errorCode>701</errorCode>") && f.contains("no object &lt;x&gt;"));
    }
}
