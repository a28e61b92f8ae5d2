//! `render` on generated images: formats, sizes, aspect ratio, orientation-free transparency,
//! and hostile input (bombs, garbage, oversized files).

use std::io::Cursor;
use std::time::Instant;

use image::{DynamicImage, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};
use percloud_thumbs::{RenderLimits, ThumbError, render, render_with_limits};

fn gradient(width: u32, height: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_fn(width, height, |x, y| {
        Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
    }))
}

fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut bytes = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut bytes), format)
        .expect("encode fixture");
    bytes
}

fn thumbnail(input: &[u8], size: u32) -> Result<DynamicImage, ThumbError> {
    let mut out = Vec::new();
    render(&mut Cursor::new(input), size, &mut out)?;
    assert_eq!(
        image::guess_format(&out).expect("output format"),
        ImageFormat::Jpeg
    );
    Ok(image::load_from_memory_with_format(&out, ImageFormat::Jpeg).expect("decode output"))
}

#[test]
fn every_format_fits_the_box_keeping_aspect_ratio() {
    let source = gradient(640, 480);
    for format in [
        ImageFormat::Jpeg,
        ImageFormat::Png,
        ImageFormat::WebP,
        ImageFormat::Gif,
    ] {
        let bytes = encode(&source, format);
        let small = thumbnail(&bytes, 256).expect("render");
        assert_eq!((small.width(), small.height()), (256, 192), "{format:?}");
        // Never enlarged: 640×480 fits 1024 as it is.
        let large = thumbnail(&bytes, 1024).expect("render");
        assert_eq!((large.width(), large.height()), (640, 480), "{format:?}");
    }
}

#[test]
fn portrait_and_extreme_shapes() {
    let tall = encode(&gradient(300, 1200), ImageFormat::Png);
    let thumb = thumbnail(&tall, 256).expect("render");
    assert_eq!((thumb.width(), thumb.height()), (64, 256));
    let strip = encode(&gradient(4000, 3), ImageFormat::Png);
    let thumb = thumbnail(&strip, 256).expect("render");
    assert_eq!(thumb.width(), 256);
    assert!(thumb.height() >= 1);
}

#[test]
fn transparency_becomes_white() {
    let clear = DynamicImage::ImageRgba8(RgbaImage::from_pixel(64, 64, Rgba([0, 0, 0, 0])));
    let thumb = thumbnail(&encode(&clear, ImageFormat::Png), 256).expect("render");
    let pixel = thumb.to_rgb8().get_pixel(32, 32).0;
    assert!(pixel.iter().all(|&c| c > 240), "{pixel:?}");
}

#[test]
fn exif_orientation_is_applied() {
    // A 40×20 JPEG with an EXIF block saying "rotate 90° clockwise": shown as 20×40.
    let jpeg = encode(&gradient(40, 20), ImageFormat::Jpeg);
    let exif: &[u8] = &[
        b'E', b'x', b'i', b'f', 0, 0, // Exif header
        b'M', b'M', 0, 42, 0, 0, 0, 8, // TIFF header, big endian, IFD at 8
        0, 1, // one entry
        0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, // Orientation (SHORT) = 6
        0, 0, 0, 0, // no next IFD
    ];
    let mut with_exif = jpeg[..2].to_vec(); // SOI
    with_exif.extend_from_slice(&[0xff, 0xe1]);
    with_exif.extend_from_slice(&u16::try_from(exif.len() + 2).expect("len").to_be_bytes());
    with_exif.extend_from_slice(exif);
    with_exif.extend_from_slice(&jpeg[2..]);
    let thumb = thumbnail(&with_exif, 256).expect("render");
    assert_eq!((thumb.width(), thumb.height()), (20, 40));
}

/// A valid PNG whose header is patched to claim `width`×`height`.
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut png = encode(&gradient(8, 8), ImageFormat::Png);
    // Signature (8), IHDR length (4), "IHDR" (4), then width and height; CRC after 13 bytes.
    png[16..20].copy_from_slice(&width.to_be_bytes());
    png[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn decompression_bombs_are_refused_before_allocating() {
    for (width, height) in [(100_000, 100_000), (12_000, 12_000), (1, 12_001)] {
        let started = Instant::now();
        let error = thumbnail(&png_claiming(width, height), 256).expect_err("bomb");
        assert!(
            matches!(
                error,
                ThumbError::Decode(_) | ThumbError::TooManyPixels { .. }
            ),
            "{error}"
        );
        assert!(
            started.elapsed().as_secs() < 2,
            "took {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn a_jpeg_claiming_huge_dimensions_is_refused() {
    let mut jpeg = encode(&gradient(16, 16), ImageFormat::Jpeg);
    // Patch the SOF0 frame header's height and width to 65,000.
    let sof = jpeg
        .windows(2)
        .position(|w| w == [0xff, 0xc0])
        .expect("SOF0");
    jpeg[sof + 5..sof + 7].copy_from_slice(&65_000u16.to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&65_000u16.to_be_bytes());
    let error = thumbnail(&jpeg, 256).expect_err("bomb");
    assert!(matches!(error, ThumbError::Decode(_)), "{error}");
}

/// The JPEG decoder does not enforce `max_alloc` itself; `render` does, from the header.
#[test]
fn pixel_budget_is_strict_for_jpeg() {
    let jpeg = encode(&gradient(600, 400), ImageFormat::Jpeg);
    let limits = RenderLimits {
        max_alloc: 600 * 400 * 3 - 1,
        ..RenderLimits::default()
    };
    let error = render_with_limits(&mut Cursor::new(&jpeg), 256, &mut Vec::new(), limits)
        .expect_err("over budget");
    assert!(
        matches!(
            error,
            ThumbError::TooManyPixels {
                width: 600,
                height: 400
            }
        ),
        "{error}"
    );
    let limits = RenderLimits {
        max_alloc: 600 * 400 * 3,
        ..limits
    };
    render_with_limits(&mut Cursor::new(&jpeg), 256, &mut Vec::new(), limits).expect("fits");
}

#[test]
fn garbage_and_other_formats_are_errors() {
    let garbage: Vec<u8> = (0..10_000u32).map(|i| (i * 7919 % 251) as u8).collect();
    assert!(matches!(
        thumbnail(&garbage, 256),
        Err(ThumbError::UnsupportedFormat)
    ));
    assert!(matches!(
        thumbnail(b"", 256),
        Err(ThumbError::UnsupportedFormat)
    ));
    // Formats the decoder could read but we do not accept (this build has no BMP or TIFF codec).
    for magic in [&b"BM\x36\x00\x00\x00"[..], b"II*\x00\x08\x00\x00\x00"] {
        let mut other = magic.to_vec();
        other.extend_from_slice(&garbage);
        assert!(matches!(
            thumbnail(&other, 256),
            Err(ThumbError::UnsupportedFormat)
        ));
    }
    // The right magic, then garbage; and a file cut in half.
    let mut fake_png = b"\x89PNG\r\n\x1a\n".to_vec();
    fake_png.extend_from_slice(&garbage);
    assert!(matches!(
        thumbnail(&fake_png, 256),
        Err(ThumbError::Decode(_))
    ));
    let png = encode(&gradient(300, 300), ImageFormat::Png);
    assert!(matches!(
        thumbnail(&png[..png.len() / 3], 256),
        Err(ThumbError::Decode(_))
    ));
    // The JPEG decoder is lenient: a cut JPEG shows what arrived (like a browser), or fails.
    let jpeg = encode(&gradient(300, 300), ImageFormat::Jpeg);
    if let Ok(thumb) = thumbnail(&jpeg[..jpeg.len() / 3], 256) {
        assert_eq!((thumb.width(), thumb.height()), (256, 256));
    }
}

#[test]
fn input_and_size_limits() {
    let png = encode(&gradient(64, 64), ImageFormat::Png);
    let limits = RenderLimits {
        max_input: 100,
        ..RenderLimits::default()
    };
    let error = render_with_limits(&mut Cursor::new(&png), 256, &mut Vec::new(), limits)
        .expect_err("too large");
    assert!(matches!(error, ThumbError::InputTooLarge { limit: 100 }));
    for size in [0, 5000] {
        let error = render(&mut Cursor::new(&png), size, &mut Vec::new()).expect_err("size");
        assert!(matches!(error, ThumbError::InvalidSize(_)));
    }
}
