//! A look at a DICOM file's element headers before dicom-rs reads it: every value length
//! within the bytes the file has, and sequences nested at most [`MAX_SEQUENCE_DEPTH`] deep.
//! dicom-rs allocates (and zero-fills) a value's declared length before reading it, and builds
//! nested sequences recursively: a 4 KB file declaring a 4 GB element cost 16 s and 4.2 GB,
//! and a 3.6 MB file of 100 000 nested sequences overflowed the stack and aborted the
//! process. The look skips values without reading them, so it costs a pass over the headers.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_parser::dataset::lazy_read::LazyDataSetReader;
use dicom_parser::dataset::LazyDataToken;
use dicom_parser::StatefulDecode;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use super::dicom_error;
use crate::volume::Error;

/// Deepest nesting of sequences read (an RTSTRUCT nests 4 deep, an enhanced multi-frame
/// image about 3).
pub const MAX_SEQUENCE_DEPTH: usize = 16;

/// Deflated transfer syntaxes: their lengths count inflated bytes, so they are not checked
/// against the file's (dicom-rs reads them as they are).
const DEFLATED: [&str; 2] = ["1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.1.98"];

/// Checks `path`'s headers as far as dicom-rs reads them (pixel data included, its bytes
/// skipped). A file without the DICOM magic, or of a transfer syntax dicom-rs
/// does not know, passes (dicom-rs names what is wrong with it); a header the look cannot read
/// is refused, as dicom-rs's reader could read it otherwise.
pub fn check(path: &Path) -> Result<(), Error> {
    let Ok(file) = File::open(path) else { return Ok(()) };
    let Ok(size) = file.metadata().map(|m| m.len()) else {
        return Ok(());
    };
    let mut r = BufReader::new(file);
    let refuse = |what: String| Err(dicom_error(path, what));
    let meta = match meta(&mut r, size) {
        Ok(Some(m)) => m,
        Ok(None) => return Ok(()),
        Err(what) => return refuse(what),
    };
    if DEFLATED.contains(&meta.transfer_syntax.as_str()) {
        return Ok(());
    }
    let Some(ts) = TransferSyntaxRegistry.get(&meta.transfer_syntax) else {
        return Ok(());
    };
    // dicom-parser's lazy reader panics on some malformed item structures (an item header
    // outside any sequence): that panic refuses the file too.
    match crate::panics::catch_silently(|| tokens(r, ts, size)) {
        Some(Ok(())) => Ok(()),
        Some(Err(what)) => refuse(what),
        None => refuse("an item header outside any sequence: refused before reading".into()),
    }
}

/// Walks the data set's headers from where `r` stands, skipping values, as far as dicom-rs
/// reads (`read_to` the pixel data: every element up to the first whose tag is past it).
/// After the pixel data, a header that cannot be read ends the walk without a verdict: some
/// scanners pad there, and delinea's reader stops at the pixel data's end then.
fn tokens(r: BufReader<File>, ts: &dicom_encoding::TransferSyntax, size: u64) -> Result<(), String> {
    let mut reader = LazyDataSetReader::new_with_ts(r, ts).map_err(|e| format!("unreadable data set: {e}"))?;
    // The decoder counts from the file's start (it takes the stream's position).
    let left = |position: u64| size.saturating_sub(position);
    let too_long = |what: String, len: u64, at: u64| {
        format!(
            "{what} declares {len} bytes of value, the file has {} left: truncated or corrupt",
            left(at)
        )
    };
    let (mut depth, mut past_pixels) = (0usize, false);
    while let Some(token) = reader.advance() {
        let token = match token {
            Ok(t) => t,
            Err(_) if past_pixels => return Ok(()),
            Err(e) => return Err(format!("unreadable element header before the pixel data: {e}")),
        };
        let top_past = |tag: dicom_core::Tag| depth == 0 && tag > tags::PIXEL_DATA;
        let skipped = match token {
            LazyDataToken::SequenceStart { tag, .. } if top_past(tag) => return Ok(()),
            LazyDataToken::SequenceStart { tag, .. } => {
                depth += 1;
                if depth > MAX_SEQUENCE_DEPTH {
                    return Err(format!(
                        "sequences nested more than {MAX_SEQUENCE_DEPTH} deep (at {tag}): refused before reading"
                    ));
                }
                Ok(())
            }
            LazyDataToken::SequenceEnd => {
                depth = depth.saturating_sub(1);
                Ok(())
            }
            LazyDataToken::PixelSequenceStart => {
                past_pixels |= depth == 0;
                Ok(())
            }
            LazyDataToken::LazyValue { header, .. } if top_past(header.tag) => return Ok(()),
            LazyDataToken::LazyValue { header, decoder } => {
                let (len, at) = (u64::from(header.len.0), decoder.position());
                if !header.len.is_undefined() && len > left(at) {
                    return Err(too_long(format!("element {}", header.tag), len, at));
                }
                let unit = value_size(header.vr);
                if !header.len.is_undefined() && len % unit != 0 {
                    return Err(format!(
                        "element {} ({:?}) has {len} bytes, not a whole number of its {unit}-byte values",
                        header.tag, header.vr
                    ));
                }
                past_pixels |= depth == 0 && header.tag == tags::PIXEL_DATA;
                (LazyDataToken::LazyValue { header, decoder }).skip()
            }
            LazyDataToken::LazyItemValue { len, decoder } => {
                let at = decoder.position();
                if u64::from(len) > left(at) {
                    return Err(too_long("an item".into(), u64::from(len), at));
                }
                (LazyDataToken::LazyItemValue { len, decoder }).skip()
            }
            other => other.skip(),
        };
        match skipped {
            Ok(()) => {}
            Err(_) if past_pixels => return Ok(()),
            Err(e) => return Err(format!("a value cut short before the pixel data: {e}")),
        }
    }
    Ok(())
}

/// The size of one value of a binary VR (1 for text and bytes). dicom-rs reads such a value
/// as `len / size` numbers, so a length that is not a multiple leaves bytes unread and every
/// later header is read from the wrong place (found by fuzzing: an FL of 14 bytes, then a
/// "length" of 4 GB read out of an item tag).
fn value_size(vr: dicom_core::VR) -> u64 {
    use dicom_core::VR;
    match vr {
        VR::US | VR::SS | VR::OW => 2,
        VR::UL | VR::SL | VR::FL | VR::OF | VR::OL | VR::AT => 4,
        VR::FD | VR::OD | VR::SV | VR::UV | VR::OV => 8,
        _ => 1,
    }
}

/// What the file meta group says.
struct Meta {
    transfer_syntax: String,
}

/// Walks the file meta group (group 2, always explicit VR little endian) by hand: each
/// length within the file. `None` when there is no `DICM` magic.
fn meta(r: &mut BufReader<File>, size: u64) -> Result<Option<Meta>, String> {
    let mut magic = [0u8; 4];
    if r.seek(SeekFrom::Start(128)).is_err() || r.read_exact(&mut magic).is_err() || &magic != b"DICM" {
        return Ok(None);
    }
    let mut at = 132u64;
    let mut transfer_syntax = String::new();
    loop {
        let mut head = [0u8; 8];
        if r.read_exact(&mut head).is_err() || u16::from_le_bytes([head[0], head[1]]) != 0x0002 {
            break;
        }
        let element = u16::from_le_bytes([head[2], head[3]]);
        let (len, header) = if matches!(&head[4..6], b"OB" | b"OW" | b"OF" | b"SQ" | b"UT" | b"UN") {
            let mut l = [0u8; 4];
            r.read_exact(&mut l).map_err(|e| e.to_string())?;
            (u64::from(u32::from_le_bytes(l)), 12)
        } else {
            (u64::from(u16::from_le_bytes([head[6], head[7]])), 8)
        };
        if at + header + len > size {
            return Err(format!(
                "file meta element (0002,{element:04X}) declares {len} bytes of value, more than the file has"
            ));
        }
        let mut value = vec![0u8; len.min(256) as usize];
        r.read_exact(&mut value).map_err(|e| e.to_string())?;
        r.seek_relative(len as i64 - value.len() as i64)
            .map_err(|e| e.to_string())?;
        if element == 0x0010 {
            transfer_syntax = String::from_utf8_lossy(&value)
                .trim_end_matches(['\0', ' '])
                .to_string();
        }
        at += header + len;
    }
    r.seek(SeekFrom::Start(at)).map_err(|e| e.to_string())?;
    Ok(Some(Meta { transfer_syntax }))
}
