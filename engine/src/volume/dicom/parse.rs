//! delinea's one reader of DICOM files: a single walk over a file that checks each header
//! before reading its value, and builds dicom-rs's in-memory object from what it read.
//!
//! dicom-rs's own file reader allocates (and zero-fills) a value's declared length before
//! reading it, and builds nested sequences recursively: a 1.5 KB file declaring a 4 GB value
//! cost 16 s and 4.2 GB, and 100 000 nested sequences in 3.6 MB overflowed the stack. A look at
//! the headers before that reader ran did not close it: on some malformed files the two parsers
//! disagreed on where an element starts, and the reader still took a tag's bytes for a length
//! (found by fuzzing, up to 3.7 GB). Here the tokens of dicom-parser's lazy reader are the
//! only parse: every value length is checked against the bytes the file has left, binary
//! values come in whole numbers, sequences nest at most [`MAX_SEQUENCE_DEPTH`] deep, and only
//! then is the value read. Memory is bounded by the file's size (a deflated data set's by
//! [`MAX_INFLATED_BYTES`]).

use std::fs::File;
use std::io::{BufReader, Cursor, Read, Seek, SeekFrom};
use std::path::Path;

use dicom_core::header::{DataElementHeader, Header};
use dicom_core::value::{DataSetSequence, PixelFragmentSequence, Value};
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_encoding::decode::explicit_le::ExplicitVRLittleEndianDecoder;
use dicom_encoding::decode::Decode;
use dicom_encoding::{TransferSyntax, TransferSyntaxIndex};
use dicom_object::meta::{FileMetaTable, FileMetaTableBuilder};
use dicom_object::{DefaultDicomObject, InMemDicomObject};
use dicom_parser::dataset::lazy_read::LazyDataSetReader;
use dicom_parser::dataset::LazyDataToken;
use dicom_parser::StatefulDecode;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use super::dicom_error;
use crate::volume::Error;

/// Deepest nesting of sequences read (an RTSTRUCT nests 4 deep, an enhanced multi-frame
/// image about 3).
pub const MAX_SEQUENCE_DEPTH: usize = 16;

/// Largest data set inflated from a deflated transfer syntax (their lengths count inflated
/// bytes, so the file's size does not bound them).
pub const MAX_INFLATED_BYTES: u64 = 1 << 30;

/// Transfer syntaxes whose data set is deflated.
const DEFLATED: [&str; 3] = [
    uids::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
    uids::JPIP_REFERENCED_DEFLATE,
    uids::JPIPHTJ2K_REFERENCED_DEFLATE,
];

/// Where reading stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Until {
    /// The end of the file.
    End,
    /// The end of the pixel data (what follows is not read: some scanners pad there, and
    /// pydicom and dcm2niix ignore it too).
    PixelData,
}

/// Reads `path` as a DICOM Part 10 file (meta group, then data set), up to `until`.
pub(super) fn read(path: &Path, until: Until) -> Result<DefaultDicomObject, Error> {
    let io = |cause| Error::Io {
        path: path.to_path_buf(),
        cause,
    };
    let file = File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let refuse = |what: String| dicom_error(path, what);
    let mut r = BufReader::new(file);
    let (meta, start) = meta(&mut r, size).map_err(refuse)?;
    let uid = meta.transfer_syntax().to_string();
    let Some(ts) = TransferSyntaxRegistry.get(&uid) else {
        return Err(refuse(format!("transfer syntax {uid} is not one delinea knows")));
    };
    let data_set = if DEFLATED.contains(&uid.as_str()) {
        let bytes = inflate(r, MAX_INFLATED_BYTES).map_err(refuse)?;
        let explicit_le = TransferSyntaxRegistry.get(uids::EXPLICIT_VR_LITTLE_ENDIAN);
        let size = bytes.len() as u64;
        walk(Cursor::new(bytes), explicit_le.unwrap_or(ts), size, until)
    } else {
        debug_assert_eq!(r.stream_position().ok(), Some(start));
        walk(r, ts, size, until)
    };
    let mut object = DefaultDicomObject::new_empty_with_meta(meta);
    *object = data_set.map_err(refuse)?;
    Ok(object)
}

/// The data set of a deflated transfer syntax, inflated, at most `cap` bytes.
fn inflate(r: impl Read, cap: u64) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    flate2::read::DeflateDecoder::new(r)
        .take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("deflated data set is corrupt: {e}"))?;
    if bytes.len() as u64 > cap {
        return Err(format!("deflated data set inflates past {cap} bytes: refused"));
    }
    Ok(bytes)
}

/// The token walk over a data set of `size` bytes (positions count from the same origin).
struct Walk<S> {
    tokens: LazyDataSetReader<S>,
    size: u64,
    until: Until,
}

/// Builds the data set from `source`'s position on. dicom-parser's lazy reader panics on some
/// malformed item structures (an item header outside any sequence): that refuses the file too.
fn walk<R: Read + Seek>(source: R, ts: &TransferSyntax, size: u64, until: Until) -> Result<InMemDicomObject, String> {
    crate::panics::catch_silently(move || {
        let tokens = LazyDataSetReader::new_with_ts(source, ts).map_err(|e| format!("unreadable data set: {e}"))?;
        data_set(&mut Walk { tokens, size, until }, 0)
    })
    .unwrap_or_else(|| Err("an item header outside any sequence (corrupt)".into()))
}

/// The elements of the data set (`depth` 0) or of one item `depth` sequences down, up to the
/// item's end, the data set's end or `until`.
fn data_set<S: StatefulDecode>(walk: &mut Walk<S>, depth: usize) -> Result<InMemDicomObject, String> {
    let mut object = InMemDicomObject::new_empty();
    let until = walk.until;
    let past = |tag: Tag| depth == 0 && until == Until::PixelData && tag > tags::PIXEL_DATA;
    while let Some(token) = walk.tokens.advance() {
        let element = match token.map_err(unreadable)? {
            LazyDataToken::ElementHeader(header) if past(header.tag) => break,
            LazyDataToken::ElementHeader(_) => continue, // its value is the next token
            LazyDataToken::LazyValue { header, decoder } => {
                fits(&header, decoder.position(), walk.size)?;
                let value = decoder.read_value_preserved(&header).map_err(|e| e.to_string());
                let value = value.map_err(|e| format!("element {}: {e} (truncated or corrupt)", header.tag))?;
                DataElement::new_with_len(header.tag, header.vr, header.len, Value::Primitive(value))
            }
            LazyDataToken::SequenceStart { tag, .. } if past(tag) => break,
            LazyDataToken::SequenceStart { tag, len } => {
                if depth + 1 > MAX_SEQUENCE_DEPTH {
                    return Err(format!(
                        "sequences nested more than {MAX_SEQUENCE_DEPTH} deep (at {tag}): refused before reading"
                    ));
                }
                let items = sequence(walk, depth + 1, tag)?;
                DataElement::new_with_len(tag, VR::SQ, len, Value::Sequence(DataSetSequence::new(items, len)))
            }
            LazyDataToken::PixelSequenceStart => DataElement::new(tags::PIXEL_DATA, VR::OB, fragments(walk)?),
            LazyDataToken::ItemEnd if depth > 0 => return Ok(object),
            other => return Err(format!("{} where an element was expected (corrupt)", kind(&other))),
        };
        let pixels_read = depth == 0 && element.tag() == tags::PIXEL_DATA;
        object.put(element);
        if pixels_read && until == Until::PixelData {
            break;
        }
    }
    Ok(object)
}

/// The items of the sequence `tag`, up to its end.
fn sequence<S: StatefulDecode>(walk: &mut Walk<S>, depth: usize, tag: Tag) -> Result<Vec<InMemDicomObject>, String> {
    let mut items = Vec::new();
    while let Some(token) = walk.tokens.advance() {
        match token.map_err(unreadable)? {
            LazyDataToken::ItemStart { .. } => items.push(data_set(walk, depth)?),
            LazyDataToken::SequenceEnd => return Ok(items),
            other => {
                return Err(format!(
                    "{} where an item of {tag} was expected (corrupt)",
                    kind(&other)
                ))
            }
        }
    }
    Err(format!("sequence {tag} does not end before the file does (truncated)"))
}

/// Encapsulated pixel data: the basic offset table (the first item) and the fragments.
fn fragments<S: StatefulDecode>(walk: &mut Walk<S>) -> Result<Value<InMemDicomObject, Vec<u8>>, String> {
    let (mut offsets, mut fragments) = (None::<Vec<u32>>, Vec::new());
    while let Some(token) = walk.tokens.advance() {
        match token.map_err(unreadable)? {
            LazyDataToken::ItemStart { .. } => {}
            LazyDataToken::LazyItemValue { len, decoder } => {
                let left = walk.size.saturating_sub(decoder.position());
                if u64::from(len) > left {
                    return Err(too_long("a pixel data item", len.into(), left));
                }
                let mut bytes = Vec::new();
                decoder
                    .read_to_vec(len, &mut bytes)
                    .map_err(|e| format!("pixel data item: {e}"))?;
                match offsets {
                    None => offsets = Some(offset_table(&bytes)?),
                    Some(_) => fragments.push(bytes),
                }
            }
            LazyDataToken::ItemEnd => {
                offsets.get_or_insert_with(Vec::new);
            }
            LazyDataToken::SequenceEnd => break,
            other => return Err(format!("{} inside encapsulated pixel data (corrupt)", kind(&other))),
        }
    }
    Ok(Value::PixelSequence(PixelFragmentSequence::new(
        offsets.unwrap_or_default(),
        fragments,
    )))
}

/// The basic offset table: little-endian 32-bit offsets (encapsulated data is always little endian).
fn offset_table(bytes: &[u8]) -> Result<Vec<u32>, String> {
    if !bytes.len().is_multiple_of(4) {
        return Err(format!(
            "basic offset table of {} bytes, not a whole number of offsets",
            bytes.len()
        ));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// A value's declared length against the bytes left after `at`, and in whole values.
fn fits(header: &DataElementHeader, at: u64, size: u64) -> Result<(), String> {
    let Some(len) = header.len.get().map(u64::from) else {
        return Err(format!(
            "element {} has an undefined length where a value was expected (corrupt)",
            header.tag
        ));
    };
    let left = size.saturating_sub(at);
    if len > left {
        return Err(too_long(&format!("element {}", header.tag), len, left));
    }
    let unit = value_size(header.vr);
    if len % unit != 0 {
        return Err(format!(
            "element {} ({:?}) has {len} bytes, not a whole number of its {unit}-byte values",
            header.tag, header.vr
        ));
    }
    Ok(())
}

fn too_long(what: &str, len: u64, left: u64) -> String {
    format!("{what} declares {len} bytes of value, the file has {left} left: truncated or corrupt")
}

fn unreadable(e: dicom_parser::dataset::lazy_read::Error) -> String {
    format!("{e} (truncated or corrupt)")
}

/// What a token is, for an error.
fn kind<D>(token: &LazyDataToken<D>) -> &'static str {
    match token {
        LazyDataToken::ElementHeader(_) | LazyDataToken::LazyValue { .. } => "an element",
        LazyDataToken::SequenceStart { .. } => "a sequence",
        LazyDataToken::PixelSequenceStart => "encapsulated pixel data",
        LazyDataToken::SequenceEnd => "a sequence delimiter",
        LazyDataToken::ItemStart { .. } | LazyDataToken::LazyItemValue { .. } => "an item",
        LazyDataToken::ItemEnd => "an item delimiter",
        _ => "an unknown token",
    }
}

/// The size of one value of a binary VR (1 for text and bytes). dicom-rs reads such a value
/// as `len / size` numbers, so a length that is not a multiple leaves bytes unread and every
/// later header is read from the wrong place (found by fuzzing: an FL of 14 bytes, then a
/// "length" of 4 GB read out of an item tag).
fn value_size(vr: VR) -> u64 {
    match vr {
        VR::US | VR::SS | VR::OW => 2,
        VR::UL | VR::SL | VR::FL | VR::OF | VR::OL | VR::AT => 4,
        VR::FD | VR::OD | VR::SV | VR::UV | VR::OV => 8,
        _ => 1,
    }
}

/// The file meta group after the `DICM` magic (at byte 128 after a preamble, or at 0), headers
/// read with dicom-rs's explicit VR little endian decoder, each length within the file; and
/// where the data set starts.
fn meta(r: &mut BufReader<File>, size: u64) -> Result<(FileMetaTable, u64), String> {
    let mut at = magic(r)?;
    let mut table = FileMetaTableBuilder::new();
    while let Ok((header, header_len)) = ExplicitVRLittleEndianDecoder::default().decode_header(r) {
        if header.tag.group() != 0x0002 {
            break;
        }
        let len = u64::from(header.len.0);
        if at + header_len as u64 + len > size {
            return Err(format!(
                "file meta element {} declares {len} bytes of value, more than the file has",
                header.tag
            ));
        }
        at += header_len as u64 + len;
        if matches!(
            header.tag.element(),
            0x0001..=0x0003 | 0x0010 | 0x0012 | 0x0013 | 0x0016
        ) {
            let mut value = vec![0; len as usize];
            r.read_exact(&mut value).map_err(|e| e.to_string())?;
            table = with_meta(table, header.tag.element(), &value);
        } else {
            r.seek_relative(len as i64).map_err(|e| e.to_string())?;
        }
    }
    r.seek(SeekFrom::Start(at)).map_err(|e| e.to_string())?;
    let table = table.build().map_err(|e| format!("file meta group: {e}"))?;
    Ok((table, at))
}

/// Where the meta group starts: after `DICM` at byte 128 (after the preamble) or at 0.
fn magic(r: &mut BufReader<File>) -> Result<u64, String> {
    for at in [128, 0] {
        let mut magic = [0u8; 4];
        if r.seek(SeekFrom::Start(at)).is_ok() && r.read_exact(&mut magic).is_ok() && &magic == b"DICM" {
            return Ok(at + 4);
        }
    }
    Err("not a DICOM file: no DICM magic at byte 128 (or 0)".into())
}

/// `table` with meta element `(0002,element)` set to `value`.
fn with_meta(table: FileMetaTableBuilder, element: u16, value: &[u8]) -> FileMetaTableBuilder {
    let text = String::from_utf8_lossy(value).trim_end_matches(['\0', ' ']).to_string();
    match element {
        0x0001 => table.information_version([value.first().copied().unwrap_or(0), value.get(1).copied().unwrap_or(1)]),
        0x0002 => table.media_storage_sop_class_uid(text),
        0x0003 => table.media_storage_sop_instance_uid(text),
        0x0010 => table.transfer_syntax(text),
        0x0012 => table.implementation_class_uid(text),
        0x0013 => table.implementation_version_name(text),
        _ => table.source_application_entity_title(text),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    #[test]
    fn a_deflated_data_set_is_inflated_up_to_the_cap_and_refused_past_it() {
        let mut deflate = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        deflate.write_all(&[7u8; 4096]).unwrap();
        let stream = deflate.finish().unwrap();
        assert_eq!(super::inflate(stream.as_slice(), 4096).unwrap(), vec![7u8; 4096]);
        let e = super::inflate(stream.as_slice(), 4095).unwrap_err();
        assert!(e.contains("inflates past 4095 bytes"), "{e}");
        let e = super::inflate(&b"not deflate at all"[..], 4096).unwrap_err();
        assert!(e.contains("corrupt"), "{e}");
    }
}
