//! The device description and the two services' SCPDs: what a control point
//! fetches from LOCATION before it calls anything.
//!
//! The SCPDs are constant. The description carries the friendly name and the
//! UUID, escaped.

use super::xml::escape;

pub const DEVICE_TYPE: &str = "urn:schemas-upnp-org:device:MediaServer:1";
pub const CONTENT_DIRECTORY: &str = "urn:schemas-upnp-org:service:ContentDirectory:1";
pub const CONNECTION_MANAGER: &str = "urn:schemas-upnp-org:service:ConnectionManager:1";

/// The device description at `/dlna/description.xml`.
pub fn device(friendly_name: &str, uuid: &str) -> String {
    let service = |ty: &str, id: &str, short: &str| {
        format!(
            "<service><serviceType>{ty}</serviceType><serviceId>urn:upnp-org:serviceId:{id}</serviceId>\
             <SCPDURL>/dlna/{short}.xml</SCPDURL><controlURL>/dlna/control/{short}</controlURL>\
             <eventSubURL>/dlna/event/{short}</eventSubURL></service>"
        )
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
         <root xmlns=\"urn:schemas-upnp-org:device-1-0\" xmlns:dlna=\"urn:schemas-dlna-org:device-1-0\" \
         xmlns:sec=\"http://www.sec.co.kr/dlna\">\
         <specVersion><major>1</major><minor>0</minor></specVersion>\
         <device><deviceType>{DEVICE_TYPE}</deviceType>\
         <friendlyName>{}</friendlyName>\
         <manufacturer>streme</manufacturer>\
         <modelDescription>torrent streaming appliance</modelDescription>\
         <modelName>streme</modelName><modelNumber>{}</modelNumber>\
         <UDN>uuid:{}</UDN>\
         <dlna:X_DLNADOC>DMS-1.50</dlna:X_DLNADOC>\
         <sec:ProductCap>smi,DCM10,getMediaInfo.sec,getCaptionInfo.sec</sec:ProductCap>\
         <presentationURL>/</presentationURL>\
         <serviceList>{}{}</serviceList></device></root>",
        escape(friendly_name),
        env!("CARGO_PKG_VERSION"),
        escape(uuid),
        service(CONTENT_DIRECTORY, "ContentDirectory", "cd"),
        service(CONNECTION_MANAGER, "ConnectionManager", "cm"),
    )
}

/// (name, direction or data type, related variable or allowed values).
type Triple<'a> = (&'a str, &'a str, &'a str);

fn scpd(actions: &[(&str, &[Triple])], variables: &[Triple]) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<scpd xmlns=\"urn:schemas-upnp-org:service-1-0\">\
         <specVersion><major>1</major><minor>0</minor></specVersion><actionList>",
    );
    for (name, args) in actions {
        out.push_str(&format!("<action><name>{name}</name><argumentList>"));
        for (arg, dir, var) in *args {
            out.push_str(&format!(
                "<argument><name>{arg}</name><direction>{dir}</direction>\
                 <relatedStateVariable>{var}</relatedStateVariable></argument>"
            ));
        }
        out.push_str("</argumentList></action>");
    }
    out.push_str("</actionList><serviceStateTable>");
    for (name, ty, allowed) in variables {
        let events = if *name == "SystemUpdateID" {
            "yes"
        } else {
            "no"
        };
        out.push_str(&format!(
            "<stateVariable sendEvents=\"{events}\"><name>{name}</name><dataType>{ty}</dataType>"
        ));
        if !allowed.is_empty() {
            out.push_str("<allowedValueList>");
            for v in allowed.split(',') {
                out.push_str(&format!("<allowedValue>{v}</allowedValue>"));
            }
            out.push_str("</allowedValueList>");
        }
        out.push_str("</stateVariable>");
    }
    out.push_str("</serviceStateTable></scpd>");
    out
}

/// ContentDirectory:1's SCPD at `/dlna/cd.xml`.
pub fn content_directory_scpd() -> String {
    scpd(
        &[
            (
                "Browse",
                &[
                    ("ObjectID", "in", "A_ARG_TYPE_ObjectID"),
                    ("BrowseFlag", "in", "A_ARG_TYPE_BrowseFlag"),
                    ("Filter", "in", "A_ARG_TYPE_Filter"),
                    ("StartingIndex", "in", "A_ARG_TYPE_Index"),
                    ("RequestedCount", "in", "A_ARG_TYPE_Count"),
                    ("SortCriteria", "in", "A_ARG_TYPE_SortCriteria"),
                    ("Result", "out", "A_ARG_TYPE_Result"),
                    ("NumberReturned", "out", "A_ARG_TYPE_Count"),
                    ("TotalMatches", "out", "A_ARG_TYPE_Count"),
                    ("UpdateID", "out", "A_ARG_TYPE_UpdateID"),
                ],
            ),
            (
                "GetSearchCapabilities",
                &[("SearchCaps", "out", "SearchCapabilities")],
            ),
            (
                "GetSortCapabilities",
                &[("SortCaps", "out", "SortCapabilities")],
            ),
            ("GetSystemUpdateID", &[("Id", "out", "SystemUpdateID")]),
            (
                "X_GetFeatureList",
                &[("FeatureList", "out", "A_ARG_TYPE_Featurelist")],
            ),
        ],
        &[
            ("A_ARG_TYPE_ObjectID", "string", ""),
            (
                "A_ARG_TYPE_BrowseFlag",
                "string",
                "BrowseMetadata,BrowseDirectChildren",
            ),
            ("A_ARG_TYPE_Filter", "string", ""),
            ("A_ARG_TYPE_Index", "ui4", ""),
            ("A_ARG_TYPE_Count", "ui4", ""),
            ("A_ARG_TYPE_SortCriteria", "string", ""),
            ("A_ARG_TYPE_Result", "string", ""),
            ("A_ARG_TYPE_UpdateID", "ui4", ""),
            ("A_ARG_TYPE_Featurelist", "string", ""),
            ("SearchCapabilities", "string", ""),
            ("SortCapabilities", "string", ""),
            ("SystemUpdateID", "ui4", ""),
        ],
    )
}

/// ConnectionManager:1's SCPD at `/dlna/cm.xml`.
pub fn connection_manager_scpd() -> String {
    scpd(
        &[
            (
                "GetProtocolInfo",
                &[
                    ("Source", "out", "SourceProtocolInfo"),
                    ("Sink", "out", "SinkProtocolInfo"),
                ],
            ),
            (
                "GetCurrentConnectionIDs",
                &[("ConnectionIDs", "out", "CurrentConnectionIDs")],
            ),
            (
                "GetCurrentConnectionInfo",
                &[
                    ("ConnectionID", "in", "A_ARG_TYPE_ConnectionID"),
                    ("RcsID", "out", "A_ARG_TYPE_RcsID"),
                    ("AVTransportID", "out", "A_ARG_TYPE_AVTransportID"),
                    ("ProtocolInfo", "out", "A_ARG_TYPE_ProtocolInfo"),
                    (
                        "PeerConnectionManager",
                        "out",
                        "A_ARG_TYPE_ConnectionManager",
                    ),
                    ("PeerConnectionID", "out", "A_ARG_TYPE_ConnectionID"),
                    ("Direction", "out", "A_ARG_TYPE_Direction"),
                    ("Status", "out", "A_ARG_TYPE_ConnectionStatus"),
                ],
            ),
        ],
        &[
            ("SourceProtocolInfo", "string", ""),
            ("SinkProtocolInfo", "string", ""),
            ("CurrentConnectionIDs", "string", ""),
            (
                "A_ARG_TYPE_ConnectionStatus",
                "string",
                "OK,ContentFormatMismatch,InsufficientBandwidth,UnreliableChannel,Unknown",
            ),
            ("A_ARG_TYPE_ConnectionManager", "string", ""),
            ("A_ARG_TYPE_Direction", "string", "Input,Output"),
            ("A_ARG_TYPE_ProtocolInfo", "string", ""),
            ("A_ARG_TYPE_ConnectionID", "i4", ""),
            ("A_ARG_TYPE_AVTransportID", "i4", ""),
            ("A_ARG_TYPE_RcsID", "i4", ""),
        ],
    )
}
