//! Decode, shrink and re-encode one image: what the helper process does.

use std::io::{Cursor, Read, Write};

use image::codecs::jpeg::JpegEncoder;
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};

use crate::ThumbError;

/// JPEG quality of thumbnails: small files, no visible blocks at grid or preview size.
const JPEG_QUALITY: u8 = 80;
/// The largest thumbnail side [`render`] accepts.
const MAX_SIZE: u32 = 4096;

/// How much [`render_with_limits`] lets an image cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderLimits {
    /// Bytes read from the input at most (the encoded file).
    pub max_input: u64,
    /// Widest and tallest image decoded, in pixels.
    pub max_side: u32,
    /// Bytes the decoder may allocate at once (mostly the decoded pixels).
    pub max_alloc: u64,
}

impl Default for RenderLimits {
    /// 64 MiB files, 12,000 px sides, 256 MiB of pixels (85 megapixels of 8-bit RGB).
    fn default() -> Self {
        RenderLimits {
            max_input: 64 << 20,
            max_side: 12_000,
            max_alloc: 256 << 20,
        }
    }
}

/// Reads a JPEG, PNG, WebP or GIF (its first frame) from `input` within the default
/// [`RenderLimits`], shrinks it to fit `size`×`size` keeping its aspect ratio (never enlarging),
/// applies its EXIF orientation, flattens transparency onto white and writes a JPEG to `output`.
pub fn render(input: &mut dyn Read, size: u32, output: &mut dyn Write) -> Result<(), ThumbError> {
    render_with_limits(input, size, output, RenderLimits::default())
}

/// [`render`] with explicit limits.
pub fn render_with_limits(
    input: &mut dyn Read,
    size: u32,
    output: &mut dyn Write,
    limits: RenderLimits,
) -> Result<(), ThumbError> {
    if size == 0 || size > MAX_SIZE {
        return Err(ThumbError::InvalidSize(size));
    }
    let encoded = read_capped(input, limits.max_input)?;
    let (image, orientation) = decode(&encoded, limits)?;
    drop(encoded);
    let mut thumb = if image.width() > size || image.height() > size {
        image.thumbnail(size, size)
    } else {
        image
    };
    thumb.apply_orientation(orientation);
    let rgb = flatten(thumb);
    let mut jpeg = Vec::new();
    JpegEncoder::new_with_quality(&mut jpeg, JPEG_QUALITY)
        .encode_image(&rgb)
        .map_err(ThumbError::Encode)?;
    output.write_all(&jpeg).map_err(ThumbError::WriteOutput)?;
    output.flush().map_err(ThumbError::WriteOutput)
}

fn read_capped(input: &mut dyn Read, limit: u64) -> Result<Vec<u8>, ThumbError> {
    let mut encoded = Vec::new();
    input
        .take(limit.saturating_add(1))
        .read_to_end(&mut encoded)
        .map_err(ThumbError::ReadInput)?;
    if encoded.len() as u64 > limit {
        return Err(ThumbError::InputTooLarge { limit });
    }
    Ok(encoded)
}

/// Decodes by content (never by name), refusing anything past `limits` before allocating it.
fn decode(encoded: &[u8], limits: RenderLimits) -> Result<(DynamicImage, Orientation), ThumbError> {
    let format = image::guess_format(encoded).map_err(|_| ThumbError::UnsupportedFormat)?;
    if !matches!(
        format,
        ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP | ImageFormat::Gif
    ) {
        return Err(ThumbError::UnsupportedFormat);
    }
    let mut decoder_limits = Limits::default();
    decoder_limits.max_image_width = Some(limits.max_side);
    decoder_limits.max_image_height = Some(limits.max_side);
    decoder_limits.max_alloc = Some(limits.max_alloc);
    let mut reader = ImageReader::with_format(Cursor::new(encoded), format);
    reader.limits(decoder_limits);
    let mut decoder = reader.into_decoder().map_err(ThumbError::Decode)?;
    // Some decoders (JPEG) treat `max_alloc` as advice; the decoded pixels must fit, strictly.
    if decoder.total_bytes() > limits.max_alloc {
        let (width, height) = decoder.dimensions();
        return Err(ThumbError::TooManyPixels { width, height });
    }
    // Orientation is a nicety: a broken EXIF block must not cost the thumbnail.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let image = DynamicImage::from_decoder(decoder).map_err(ThumbError::Decode)?;
    Ok((image, orientation))
}

/// 8-bit RGB for the JPEG encoder; transparent pixels become white, as a browser shows them on
/// a light page.
fn flatten(image: DynamicImage) -> RgbImage {
    if !image.color().has_alpha() {
        return image.into_rgb8();
    }
    let rgba = image.into_rgba8();
    let mut rgb = RgbImage::new(rgba.width(), rgba.height());
    for (out, pixel) in rgb.pixels_mut().zip(rgba.pixels()) {
        let [r, g, b, a] = pixel.0;
        let blend = |c: u8| {
            let (c, a) = (u32::from(c), u32::from(a));
            // (c·a + 255·(255 − a)) / 255, rounded; never above 255.
            u8::try_from((c * a + 255 * (255 - a) + 127) / 255).unwrap_or(u8::MAX)
        };
        out.0 = [blend(r), blend(g), blend(b)];
    }
    rgb
}
