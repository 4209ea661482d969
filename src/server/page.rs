//! The pages people open in a browser: `/` (a dashboard of torrents and the
//! cache) and `/test-torrent-streaming` (add a torrent, watch its status,
//! play it in a `<video>`).
//!
//! # Design
//! Plain HTML, CSS and JS compiled into the binary with `include_str!`, so the
//! box needs no asset directory and a page never loads anything from outside
//! (a LAN box may have no internet). The scripts speak only to the JSON API.
//!
//! Must never build HTML from request data: the pages are constant, and the
//! script inserts names from torrents as text, never as markup.

use http_types::{Request, Response, StatusCode};

use super::error;

const DASHBOARD: &str = include_str!("page/index.html");
const PLAYER: &str = include_str!("page/player.html");
/// The assets under `/page/`, with their content types.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("page/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("page/style.css"),
    ),
];

/// Whether a `GET /` comes from a browser: it asks for HTML first, where API
/// clients ask for JSON or anything, and keep getting the JSON index.
pub fn wants_html(req: &Request) -> bool {
    req.header("Accept")
        .is_some_and(|a| a.as_str().contains("text/html"))
}

fn page(body: &'static str, content_type: &str) -> Response {
    let mut res = Response::new(StatusCode::Ok);
    res.insert_header("Content-Type", content_type);
    // Pages change only with the binary: a short cache keeps upgrades visible.
    res.insert_header("Cache-Control", "max-age=60");
    res.set_body(body);
    res
}

pub fn dashboard() -> Response {
    page(DASHBOARD, "text/html; charset=utf-8")
}

pub fn player() -> Response {
    page(PLAYER, "text/html; charset=utf-8")
}

pub fn asset(name: &str) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, body)) => page(body, content_type),
        None => error(StatusCode::NotFound, format!("no page asset {name:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything a page refers to is served by this binary: no URL with a
    /// scheme or `//` host in any page or asset.
    #[test]
    fn pages_load_nothing_from_outside() {
        let all = [DASHBOARD, PLAYER]
            .into_iter()
            .chain(ASSETS.iter().map(|(_, _, body)| *body));
        for text in all {
            for needle in ["http://", "https://", "src=\"//", "href=\"//", "url("] {
                assert!(
                    !text.contains(needle),
                    "a page refers outside with {needle:?}"
                );
            }
        }
    }

    #[test]
    fn pages_refer_only_to_served_assets() {
        for page in [DASHBOARD, PLAYER] {
            for (name, _, _) in ASSETS {
                assert!(page.contains(&format!("/page/{name}")), "{name} not used");
            }
        }
        assert_eq!(asset("nope.js").status(), StatusCode::NotFound);
    }

    #[test]
    fn the_player_has_what_the_browser_test_drives() {
        for id in [
            "torrent-input",
            "add-button",
            "player",
            "status",
            "files",
            "message",
        ] {
            assert!(PLAYER.contains(&format!("id=\"{id}\"")), "no #{id}");
        }
        assert!(PLAYER.contains("Add Torrent"));
    }
}
