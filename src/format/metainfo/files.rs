//! The name and files of an info dict, placed in torrent space.
//!
//! Owns the rules for names that come from a torrent: each path segment is
//! checked here, once, and must never be joined into a file-system path by
//! anyone (the store speaks pieces, the server builds URLs).
//!
//! # Implementation
//! `name.utf-8` / `path.utf-8` are preferred when they are valid UTF-8,
//! because older clients wrote the plain keys in a local code page and the
//! `.utf-8` twin beside them. Without a valid twin, a non-UTF-8 name is an
//! error rather than a lossy guess, so two files never end up with the same
//! replacement-character name.

use super::{required, FileEntry, MetainfoError};
use crate::format::bencode::Node;

/// Legacy padding files (before BEP 47's `attr`) are named like this.
const LEGACY_PADDING_PREFIX: &str = "_____padding_file_";

/// The torrent's name: one safe segment.
pub(super) fn name(info: &Node<'_>) -> Result<String, MetainfoError> {
    let name = match info.get(b"name.utf-8").and_then(Node::as_str) {
        Some(name) => name,
        None => text(required(info, "name")?, "name")?,
    };
    check_path(&[name])?;
    Ok(name.to_string())
}

/// The files, single-file (`length`) or multi-file (`files`), with offsets.
pub(super) fn files(info: &Node<'_>, name: &str) -> Result<Vec<FileEntry>, MetainfoError> {
    match (info.get(b"length"), info.get(b"files")) {
        (Some(_), Some(_)) => Err(MetainfoError::LengthAndFiles),
        (None, None) => Err(MetainfoError::Missing("length or files")),
        (Some(length), None) => Ok(vec![FileEntry {
            path: vec![name.to_string()],
            length: file_length(length, 0)?,
            offset: 0,
            padding: false,
        }]),
        (None, Some(files)) => {
            let list = files.as_list().ok_or(MetainfoError::WrongType {
                key: "files",
                expected: "a list",
            })?;
            if list.is_empty() {
                return Err(MetainfoError::NoFiles);
            }
            let mut offset = 0u64;
            let mut out = Vec::with_capacity(list.len());
            for (index, file) in list.iter().enumerate() {
                let entry = file_entry(file, index, offset)?;
                offset = offset
                    .checked_add(entry.length)
                    .ok_or(MetainfoError::TotalLengthOverflow)?;
                out.push(entry);
            }
            Ok(out)
        }
    }
}

fn file_entry(file: &Node<'_>, index: usize, offset: u64) -> Result<FileEntry, MetainfoError> {
    if file.as_dict().is_none() {
        return Err(MetainfoError::WrongType {
            key: "files",
            expected: "a list of dicts",
        });
    }
    let length = file_length(required(file, "length")?, index)?;
    let path = match file.get(b"path.utf-8").and_then(utf8_segments) {
        Some(path) => path,
        None => {
            let list = required(file, "path")?
                .as_list()
                .ok_or(MetainfoError::WrongType {
                    key: "path",
                    expected: "a list",
                })?;
            list.iter()
                .map(|seg| text(seg, "path"))
                .collect::<Result<_, _>>()?
        }
    };
    check_path(&path)?;
    let attr = file
        .get(b"attr")
        .and_then(Node::as_bytes)
        .unwrap_or_default();
    let padding = attr.contains(&b'p')
        || path
            .last()
            .is_some_and(|last| last.starts_with(LEGACY_PADDING_PREFIX));
    let path = path.into_iter().map(String::from).collect();
    Ok(FileEntry {
        path,
        length,
        offset,
        padding,
    })
}

fn file_length(node: &Node<'_>, index: usize) -> Result<u64, MetainfoError> {
    let value = node.as_int().ok_or(MetainfoError::WrongType {
        key: "length",
        expected: "an integer",
    })?;
    u64::try_from(value).map_err(|_| MetainfoError::FileLength { index, value })
}

/// A `path.utf-8` list, if every segment is valid UTF-8.
fn utf8_segments<'a>(node: &Node<'a>) -> Option<Vec<&'a str>> {
    node.as_list()?.iter().map(Node::as_str).collect()
}

fn text<'a>(node: &Node<'a>, key: &'static str) -> Result<&'a str, MetainfoError> {
    let bytes = node.as_bytes().ok_or(MetainfoError::WrongType {
        key,
        expected: "a string",
    })?;
    std::str::from_utf8(bytes).map_err(|_| MetainfoError::NotUtf8 {
        key,
        lossy: String::from_utf8_lossy(bytes).into_owned(),
    })
}

/// Refuses the whole path if any segment could climb out, be absolute, or
/// hide a separator; an empty list is refused too.
fn check_path(path: &[&str]) -> Result<(), MetainfoError> {
    let safe = |seg: &&str| {
        !seg.is_empty() && *seg != "." && *seg != ".." && !seg.contains(['/', '\\', '\0'])
    };
    if path.is_empty() || !path.iter().all(safe) {
        return Err(MetainfoError::UnsafePath {
            path: path.join("/"),
        });
    }
    Ok(())
}
