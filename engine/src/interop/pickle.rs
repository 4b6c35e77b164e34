//! A check of a pickle's shape before burn-store's reader builds it: every length inside the
//! bytes it has, the value tree at most [`MAX_DEPTH`] deep and [`MAX_NODES`] large. burn-store
//! allocates a string's length before reading it, clones memoised values on every `GET` (a
//! few bytes double a value's size) and walks and drops the tree recursively, so a 20-byte
//! pickle could abort the process and a deep one overflow its stack; this scan runs the
//! opcodes on a stack of (depth, size) instead of values, in time and memory linear in the
//! bytes.

/// Deepest value tree read (a state_dict is about 6 deep: dict, tensor, rebuild args).
pub const MAX_DEPTH: u32 = 100;
/// Most values in one pickle's tree (the paper's network: about 2 000).
pub const MAX_NODES: u64 = 1 << 22;
/// Most pickles read in a row (a legacy checkpoint has five, then raw storage bytes).
pub const MAX_PICKLES: usize = 5;

/// A value as the scan sees it: how deep its tree is and how many values it holds.
#[derive(Clone, Copy, Default)]
struct Shape {
    depth: u32,
    nodes: u64,
}

impl Shape {
    const LEAF: Shape = Shape { depth: 1, nodes: 1 };

    /// A container of `items`.
    fn of(items: &[Shape]) -> Shape {
        items.iter().fold(Shape::LEAF, |s, i| s.holding(*i))
    }

    /// This container with `item` added.
    fn holding(self, item: Shape) -> Shape {
        Shape {
            depth: self.depth.max(item.depth.saturating_add(1)),
            nodes: self.nodes.saturating_add(item.nodes),
        }
    }
}

/// The scan's machine: the stack (marks as indexes into it) and the memo.
#[derive(Default)]
struct Machine {
    stack: Vec<Shape>,
    marks: Vec<usize>,
    memo: std::collections::HashMap<u64, Shape>,
}

impl Machine {
    fn pop(&mut self) -> Result<Shape, String> {
        self.stack
            .pop()
            .ok_or_else(|| "its pickle pops an empty stack".to_string())
    }

    fn pop_mark(&mut self) -> Result<Vec<Shape>, String> {
        let at = self.marks.pop().ok_or("its pickle has no MARK to pop to")?;
        if at > self.stack.len() {
            return Err("its pickle pops past its MARK".into());
        }
        Ok(self.stack.split_off(at))
    }

    fn add_to_top(&mut self, items: &[Shape]) -> Result<(), String> {
        let top = self.stack.last_mut().ok_or("its pickle adds to an empty stack")?;
        *top = within_caps(items.iter().fold(*top, |t, i| t.holding(*i)))?;
        Ok(())
    }

    fn push(&mut self, s: Shape) -> Result<(), String> {
        self.stack.push(within_caps(s)?);
        Ok(())
    }

    /// Pops `n` values and pushes one holding them.
    fn combine(&mut self, n: usize) -> Result<(), String> {
        let items: Vec<Shape> = (0..n).map(|_| self.pop()).collect::<Result<_, _>>()?;
        self.push(Shape::of(&items))
    }
}

/// Most entries of a PyTorch zip (the paper's network has 218). burn-store opens the zip
/// again for every tensor it reads, so reading is quadratic in the entries (found by
/// fuzzing: a 88 KB file of 220 entries took over a second under AddressSanitizer).
pub const MAX_ZIP_ENTRIES: usize = 1024;

/// Most bytes of pickle read from one file or zip entry.
pub const MAX_PICKLE_BYTES: u64 = 64 << 20;

/// Checks the pickles of a PyTorch file: each `data.pkl` of a zip, or the pickles a legacy
/// checkpoint or a bare pickle starts with.
pub fn check_file(path: &std::path::Path) -> Result<(), String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut head = Vec::new();
    file.take(MAX_PICKLE_BYTES)
        .read_to_end(&mut head)
        .map_err(|e| e.to_string())?;
    if !head.starts_with(b"PK\x03\x04") {
        return check(&head);
    }
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| format!("not a readable zip: {e}"))?;
    if zip.len() > MAX_ZIP_ENTRIES {
        return Err(format!(
            "a zip of {} entries, more than the {MAX_ZIP_ENTRIES} a model file may have",
            zip.len()
        ));
    }
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| format!("zip entry {i}: {e}"))?;
        if !entry.name().ends_with("data.pkl") {
            continue;
        }
        if entry.size() > MAX_PICKLE_BYTES {
            return Err(format!(
                "{}: a pickle of more than {MAX_PICKLE_BYTES} bytes",
                entry.name()
            ));
        }
        let mut pickle = Vec::new();
        (&mut entry)
            .take(MAX_PICKLE_BYTES)
            .read_to_end(&mut pickle)
            .map_err(|e| format!("{}: {e}", entry.name()))?;
        check(&pickle).map_err(|e| format!("{}: {e}", entry.name()))?;
    }
    Ok(())
}

fn within_caps(s: Shape) -> Result<Shape, String> {
    if s.depth > MAX_DEPTH {
        return Err(format!("its pickle nests values more than {MAX_DEPTH} deep"));
    }
    if s.nodes > MAX_NODES {
        return Err(format!("its pickle builds more than {MAX_NODES} values"));
    }
    Ok(s)
}

/// Checks the pickles at the start of `bytes`: the first, and up to [`MAX_PICKLES`] in a row
/// while the next starts with PROTO (a legacy checkpoint's five); what follows is not looked at.
pub fn check(bytes: &[u8]) -> Result<(), String> {
    let mut at = 0;
    for _ in 0..MAX_PICKLES {
        at = check_one(bytes, at)?;
        if bytes.get(at) != Some(&0x80) {
            break;
        }
    }
    Ok(())
}

/// Scans one pickle from `at`; where it ends (after its STOP).
fn check_one(bytes: &[u8], mut at: usize) -> Result<usize, String> {
    let mut m = Machine::default();
    loop {
        let Some(&op) = bytes.get(at) else {
            return Err("its pickle ends without STOP (cut short?)".into());
        };
        let len = argument(bytes, op, at + 1)?
            .ok_or_else(|| format!("its pickle has an opcode no pickle protocol has (0x{op:02x} at byte {at})"))?;
        let body = &bytes[at + 1..at + 1 + len];
        at += 1 + len;
        if op == b'.' {
            return Ok(at);
        }
        step(&mut m, op, body)?;
    }
}

/// How many bytes follow opcode `op` at `at` (its argument); `None` for an unknown opcode.
fn argument(bytes: &[u8], op: u8, at: usize) -> Result<Option<usize>, String> {
    let rest = &bytes[at.min(bytes.len())..];
    let prefixed = |width: usize| -> Result<usize, String> {
        let field = rest.get(..width).ok_or("its pickle is cut short")?;
        let mut le = [0u8; 8];
        le[..width].copy_from_slice(field);
        let n = usize::try_from(u64::from_le_bytes(le)).map_err(|_| "a length past memory")?;
        match n.checked_add(width) {
            Some(total) if total <= rest.len() => Ok(total),
            _ => Err(format!("its pickle gives a length of {n} bytes, more than it holds")),
        }
    };
    let fixed = |n: usize| {
        if n <= rest.len() {
            Ok(n)
        } else {
            Err("its pickle is cut short".to_string())
        }
    };
    let line = |lines: usize| -> Result<usize, String> {
        let mut end = 0;
        for _ in 0..lines {
            let nl = rest[end..]
                .iter()
                .position(|b| *b == b'\n')
                .ok_or("its pickle is cut short")?;
            end += nl + 1;
        }
        Ok(end)
    };
    let n = match op {
        b'('
        | b'.'
        | b'0'
        | b'1'
        | b'2'
        | b'N'
        | b'Q'
        | b'R'
        | b'a'
        | b'b'
        | b'd'
        | b'}'
        | b'e'
        | b'l'
        | b']'
        | b'o'
        | b's'
        | b't'
        | b')'
        | b'u'
        | 0x81
        | 0x85..=0x89
        | 0x8f..=0x94
        | 0x97
        | 0x98 => 0,
        b'K' | b'h' | b'q' | 0x80 | 0x82 => fixed(1)?,
        b'M' | 0x83 => fixed(2)?,
        b'J' | b'j' | b'r' | 0x84 => fixed(4)?,
        b'G' | 0x95 => fixed(8)?,
        b'F' | b'I' | b'L' | b'P' | b'S' | b'V' | b'g' | b'p' => line(1)?,
        b'c' | b'i' => line(2)?,
        b'U' | b'C' | 0x8a | 0x8c => prefixed(1)?,
        b'T' | b'X' | b'B' | 0x8b => prefixed(4)?,
        0x8d | 0x8e | 0x96 => prefixed(8)?,
        _ => return Ok(None),
    };
    Ok(Some(n))
}

/// One opcode on the scan's machine.
fn step(m: &mut Machine, op: u8, body: &[u8]) -> Result<(), String> {
    match op {
        b'(' => m.marks.push(m.stack.len()),
        b'0' => drop(m.pop()?),
        b'1' => drop(m.pop_mark()?),
        b'2' => {
            let top = *m.stack.last().ok_or("its pickle duplicates an empty stack")?;
            m.push(top)?;
        }
        b'}' | b']' | b')' | 0x8f => m.push(Shape::LEAF)?,
        b'd' | b'l' | b't' | 0x91 | b'o' | b'i' => {
            let items = m.pop_mark()?;
            m.push(Shape::of(&items))?;
        }
        b'e' | b'u' | 0x90 => {
            let items = m.pop_mark()?;
            m.add_to_top(&items)?;
        }
        b'a' | b'b' => {
            let v = m.pop()?;
            m.add_to_top(&[v])?;
        }
        b's' => {
            let (v, k) = (m.pop()?, m.pop()?);
            m.add_to_top(&[k, v])?;
        }
        0x85 => m.combine(1)?,
        0x86 | b'R' | 0x81 | 0x93 => m.combine(2)?,
        0x87 | 0x92 => m.combine(3)?,
        b'Q' => m.combine(1)?,
        b'p' | b'q' | b'r' | 0x94 => {
            let top = *m.stack.last().ok_or("its pickle memoises an empty stack")?;
            let key = if op == 0x94 {
                m.memo.len() as u64
            } else {
                memo_key(op, body)
            };
            m.memo.insert(key, top);
        }
        b'g' | b'h' | b'j' => {
            let v = m.memo.get(&memo_key(op, body)).copied().unwrap_or(Shape::LEAF);
            m.push(v)?;
        }
        0x98 | 0x80 | 0x95 => {}
        _ => m.push(Shape::LEAF)?,
    }
    Ok(())
}

/// The memo index of a PUT or GET (text, one byte or four bytes).
fn memo_key(op: u8, body: &[u8]) -> u64 {
    match op {
        b'q' | b'h' => u64::from(body[0]),
        b'r' | b'j' => u64::from(u32::from_le_bytes([body[0], body[1], body[2], body[3]])),
        _ => std::str::from_utf8(body)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(u64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_dict_pickle_passes() {
        // {'a': [1, 2], 'b': (3,)} at protocol 2, as Python writes it.
        let p = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01]q\x02(K\x01K\x02eX\x01\x00\x00\x00bq\x03K\x03\x85q\x04u.";
        check(p).unwrap();
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut p = b"\x80\x02".to_vec();
        p.extend(std::iter::repeat_n(b']', 1000));
        p.extend(std::iter::repeat_n(b'a', 999));
        p.push(b'.');
        assert!(check(&p).unwrap_err().contains("deep"), "{:?}", check(&p));
    }

    #[test]
    fn a_memo_doubling_its_value_is_refused() {
        // x = []; then 40 times x = (x, x) through the memo: 2^40 values from 200 bytes.
        let mut p = b"\x80\x02]q\x00".to_vec();
        for _ in 0..40 {
            p.extend(b"h\x00h\x00\x86q\x00");
        }
        p.push(b'.');
        assert!(check(&p).unwrap_err().contains("values"), "{:?}", check(&p));
    }

    #[test]
    fn an_unknown_opcode_is_refused() {
        assert!(check(b"\x80\x02\xff.").unwrap_err().contains("0xff at byte 2"));
    }

    #[test]
    fn a_length_past_the_end_is_refused() {
        let p = b"\x80\x04\x8d\xff\xff\xff\xff\xff\xff\xff\x7fabc.";
        assert!(check(p).unwrap_err().contains("more than it holds"));
        assert!(check(b"\x80\x02X\xff\xff\xff\x00ab.").is_err());
    }
}
