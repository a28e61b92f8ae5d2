//! percloud-thumbs: photo thumbnails, made in the background and cached on disk.
//!
//! A thumbnail is a JPEG fitting `size`×`size` (one of [`SIZES`]) made from a JPEG, PNG, WebP
//! or GIF image. Decoding untrusted images is the riskiest thing the daemon does, so it never
//! happens in the daemon: the [`Thumbnailer`] runs a helper process per thumbnail
//! (`percloud thumbnail --size S`, see [`HelperCommand`]) that lowers its own resource limits
//! (address space, CPU time), decodes with strict [`image::Limits`] and writes the JPEG to
//! stdout. The daemon feeds it the image, caps its output and kills it after a wall-clock
//! timeout. An image that fails is remembered by a small marker file and never retried, so a
//! hostile file costs one helper run, not one per request.
//!
//! **Owns**: the thumbnail cache folder (`<data>/thumbs`): `<hh>/<hash>-<size>.jpg` thumbnails,
//! `<hh>/<hash>.failed` markers, and `tmp/` for files being written (cleared on start).
//!
//! **Must never**: decode an image inside the daemon's process; know about the store, HTTP or
//! users (content arrives through a closure, keyed by its content hash); accept sizes other
//! than [`SIZES`] (each size is a cache entry, so free sizes would let anyone fill the disk);
//! run more than a bounded number of helpers or queue more than a bounded number of jobs.
//!
//! Module map: `render` (decode, resize, encode: what the helper does), `helper` (the child
//! process: both its side and the daemon's), `cache` (files on disk), `worker` (the queue and
//! the [`Thumbnailer`]), `error`.

mod cache;
mod error;
mod helper;
mod render;
mod worker;

pub use error::ThumbError;
pub use helper::{HelperCommand, run_helper};
pub use render::{RenderLimits, render, render_with_limits};
pub use worker::{ThumbOptions, ThumbOutcome, ThumbStatus, Thumbnailer};

/// The only thumbnail sizes served: the longest side of a grid tile and of a preview, in pixels.
pub const SIZES: [u32; 2] = [256, 1024];

/// Whether a file can have a thumbnail, judged from its MIME type (`image/jpeg`) or its name
/// (`cat.JPG`): JPEG, PNG, WebP and GIF.
pub fn is_thumbnailable(mime_or_name: &str) -> bool {
    let lower = mime_or_name.trim().to_ascii_lowercase();
    if let Some(subtype) = lower.strip_prefix("image/") {
        let subtype = subtype.split(';').next().unwrap_or_default().trim();
        return matches!(subtype, "jpeg" | "jpg" | "pjpeg" | "png" | "webp" | "gif");
    }
    match lower.rsplit_once('.') {
        Some((stem, extension)) if !stem.is_empty() => matches!(
            extension,
            "jpg" | "jpeg" | "jpe" | "jfif" | "png" | "webp" | "gif"
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbnailable_by_mime_or_name() {
        for yes in [
            "image/jpeg",
            "IMAGE/PNG",
            "image/webp",
            "image/gif",
            "image/jpeg; charset=binary",
            "cat.jpg",
            "Holiday.JPEG",
            "a.b.png",
            "anim.gif",
            "x.webp",
        ] {
            assert!(is_thumbnailable(yes), "{yes}");
        }
        for no in [
            "image/svg+xml",
            "image/tiff",
            "video/mp4",
            "text/plain",
            "notes.txt",
            "jpg",
            ".png",
            "photo.heic",
            "",
        ] {
            assert!(!is_thumbnailable(no), "{no}");
        }
    }
}
